// Edge and agent assembled as they run, in one process but over real loopback sockets: CA init,
// a join token, enrollment over TLS, the agent's reverse sessions (two slots), raw TCP ingress to
// a project's port, and revocation closing live sessions within one heartbeat interval.
import t from 'tap'
import { echoServer, tempDir } from '../helpers/echo.js'
import net from 'node:net'
import { once } from 'node:events'
import { createHash, randomBytes } from 'node:crypto'
import { initCa } from '../../certs/pki.js'
import { createJoinToken, FileTokenStore } from '../../certs/tokens.js'
import { joinOverTls, saveRunnerIdentity } from '../../certs/enroll.js'
import { wallClock } from '../../certs/state.js'
import { startEdge } from '../../edge/edge.js'
import { startAgent } from '../../agent/agent.js'
import { parseTcpMapping } from '../../edge/ingress/tcp.js'
import { enroll, report } from '../helpers/runner.js'
import { until } from '../helpers/until.js'

const P = '0f8fad5b-d9cb-469f-a165-70867728950e'

t.test('enroll, connect, reach a project through raw TCP ingress, revoke', async (tt) => {
  const edgeDir = await tempDir(tt, 'edge')
  const agentDir = await tempDir(tt, 'agent')

  const echoPort = await echoServer(tt)

  const { pki } = await initCa(edgeDir, { edgeId: 'edge-1' })
  const token = await createJoinToken(new FileTokenStore(edgeDir), {
    runnerId: 'runner-a',
    ttlMs: 15 * 60_000,
    edgeCaFingerprint: pki.edgeCa.fingerprint.base64url,
    clock: wallClock,
  })
  const events: Array<[string, Record<string, unknown>]> = []
  const edge = await startEdge({
    stateDir: edgeDir,
    tunnelPort: 0,
    tcp: [parseTcpMapping(`127.0.0.1:0=${P}:${echoPort}`)],
    heartbeatIntervalMs: 200,
    onEvent: (e, d) => events.push([e, d]),
  })
  tt.teardown(() => edge.close())
  const tunnelPort = edge.tunnel.address.port

  const identity = await joinOverTls({ host: '127.0.0.1', port: tunnelPort, token })
  tt.equal(identity.runnerId, 'runner-a', 'the runner id comes from the token record')
  await saveRunnerIdentity(agentDir, identity)
  await tt.rejects(
    joinOverTls({ host: '127.0.0.1', port: tunnelPort, token }),
    { code: 'HOPGATE_ERR_JOIN_TOKEN_USED' },
    'a join token works once',
  )

  const agent = await startAgent({
    stateDir: agentDir,
    edges: [`127.0.0.1:${tunnelPort}`],
    slots: 2,
    projects: { [P]: { host: '127.0.0.1', allowedPorts: [echoPort] } },
    report,
  })
  tt.teardown(() => agent.close())
  await until(() => edge.sessions.sessions('runner-a').length === 2, 'two sessions from the agent')
  tt.equal((await edge.store.getRoute(P))?.runner, 'runner-a', 'the hosted project is routed to it')

  const data = randomBytes(8 * 1024 * 1024)
  const client = net.connect(edge.tcp[0]!.address.port, '127.0.0.1')
  const chunks: Buffer[] = []
  client.on('data', (c: Buffer) => chunks.push(c))
  client.end(data)
  await once(client, 'end')
  const got = Buffer.concat(chunks)
  tt.equal(
    createHash('sha256').update(got).digest('hex'),
    createHash('sha256').update(data).digest('hex'),
    '8 MiB through edge and agent, intact',
  )

  const revokedAt = Date.now()
  await edge.revocation.revoke('runner-a')
  await until(
    () => edge.sessions.sessions('runner-a').length === 0,
    'revoked sessions closed',
    2000,
  )
  tt.ok(
    Date.now() - revokedAt < 1000,
    `live sessions closed ${Date.now() - revokedAt} ms after revocation`,
  )
  await until(
    () => events.some(([e, d]) => e === 'tunnel-refused' && d.code === 'HOPGATE_ERR_PKI_REVOKED'),
    'a reconnect refused as revoked',
  )
  tt.pass('the agent’s reconnects are refused with HOPGATE_ERR_PKI_REVOKED')
})

t.test('direct connector: with no reverse session left, the edge dials the agent', async (tt) => {
  const edgeDir = await tempDir(tt, 'edge')
  const echoPort = await echoServer(tt)
  await initCa(edgeDir, { edgeId: 'edge-1' })
  const edge = await startEdge({
    stateDir: edgeDir,
    tunnelPort: 0,
    tcp: [parseTcpMapping(`127.0.0.1:0=${P}:${echoPort}`)],
    heartbeatIntervalMs: 200,
  })
  tt.teardown(() => edge.close())
  const agentDir = await enroll(tt, edgeDir, edge.tunnel.address.port, 'runner-d')
  const agent = await startAgent({
    stateDir: agentDir,
    edges: [`127.0.0.1:${edge.tunnel.address.port}`],
    slots: 1,
    listen: { host: '127.0.0.1', port: 0 },
    projects: { [P]: { host: '127.0.0.1', allowedPorts: [echoPort] } },
    report,
  })
  tt.teardown(() => agent.close())
  await until(() => edge.sessions.sessions('runner-d').length === 1, 'reverse session up')
  tt.equal(
    (await edge.store.getRunner('runner-d'))?.directAddress,
    `127.0.0.1:${agent.direct!.address.port}`,
    'direct address registered',
  )
  await agent.connector!.stop()
  await until(() => edge.sessions.sessions('runner-d').length === 0, 'reverse session gone')

  const client = net.connect(edge.tcp[0]!.address.port, '127.0.0.1')
  const chunks: Buffer[] = []
  client.on('data', (c: Buffer) => chunks.push(c))
  client.end('via the direct connector')
  await once(client, 'end')
  tt.equal(Buffer.concat(chunks).toString(), 'via the direct connector')
  const sessions = edge.sessions.sessions('runner-d')
  tt.equal(sessions.length, 1, 'one session, made by the edge')
  tt.equal(sessions[0]?.connector, 'direct')
})
