// The identity matrix against a real edge (startEdge, real TLS on loopback): each refusal is
// reported with its typed reason and counted in hopgate_edge_tunnel_refusals_total{reason}, and
// nothing else is counted for it. Also: GET /metrics on the admin API, the live-session gauge,
// and a start that fails on a taken admin port closing the tunnel listener it had opened.
import t from 'tap'
import net from 'node:net'
import tls from 'node:tls'
import { once } from 'node:events'
import { initCa } from '../../certs/pki.js'
import { createJoinToken, FileTokenStore } from '../../certs/tokens.js'
import { joinOverTls, loadRunnerIdentity } from '../../certs/enroll.js'
import { TUNNEL_ALPN } from '../../certs/wire.js'
import { startEdge } from '../../edge/edge.js'
import { agentHandshake } from '../../agent/control.js'
import { tunnelDialer } from '../../agent/dial.js'
import { TargetRegistry } from '../../agent/registry.js'
import { EpochTable } from '../../agent/streams.js'
import { Session } from '../../shared/yamux/index.js'
import { issueRunner, wallManualClock, type Issued } from '../certs/_helpers.js'
import { tempDir } from '../helpers/echo.js'
import { enroll, report, testAgent, testEdge, until } from '../agent/_cluster.js'

const DAY = 24 * 3600_000

t.test('every identity refusal is logged with its reason and counted', async (tt) => {
  const events: Array<{ code: string }> = []
  // Recorded through the edge's own event hook: what gets logged is what gets counted.
  const edge = await testEdge(tt, {
    onEvent: (ev, d) => {
      if (ev === 'tunnel-refused') events.push({ code: String(d.code) })
    },
  })
  const seen = (): Promise<void> => until(() => events.length > 0, 'refusal reported')
  const tunnelPort = edge.edge.tunnel.address.port

  const attempt = async (client: Issued | undefined): Promise<void> => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port: tunnelPort,
      ...(client ? { key: client.keyPem, cert: client.certPem } : {}),
      ca: edge.pki.edgeCa.certPem,
      ALPNProtocols: [TUNNEL_ALPN],
      checkServerIdentity: () => undefined,
    })
    socket.on('error', () => {})
    await once(socket, 'close')
  }
  const expectRefusal = async (
    what: string,
    code: string,
    act: () => Promise<unknown>,
  ): Promise<void> => {
    events.length = 0
    const before = await edge.sample('hopgate_edge_tunnel_refusals_total', { reason: code })
    await act()
    await seen()
    tt.equal(events[0]!.code, code, `${what}: refused as ${code}`)
    tt.equal(
      await edge.sample('hopgate_edge_tunnel_refusals_total', { reason: code }),
      before + 1,
      `${what}: counted`,
    )
  }

  const { pki: foreign } = await initCa(await tempDir(tt, 'foreign'))
  await expectRefusal('cert from another CA', 'HOPGATE_ERR_PKI_WRONG_ISSUER', () =>
    attempt(issueRunner(foreign, 'runner-a')),
  )
  await expectRefusal('expired cert', 'HOPGATE_ERR_PKI_CERT_EXPIRED', () =>
    attempt(issueRunner(edge.pki, 'runner-a', { at: Date.now() - 3 * DAY, lifetimeMs: DAY })),
  )
  await edge.edge.revocation.revoke('runner-v')
  await expectRefusal('revoked runner', 'HOPGATE_ERR_PKI_REVOKED', () =>
    attempt(issueRunner(edge.pki, 'runner-v')),
  )
  await expectRefusal('edge cert offered as a runner cert', 'HOPGATE_ERR_PKI_WRONG_ISSUER', () =>
    attempt({ certPem: edge.pki.edgeClient.certPem, keyPem: edge.pki.edgeClient.keyPem }),
  )

  const token = await edge.token('runner-t')
  await joinOverTls({ host: '127.0.0.1', port: tunnelPort, token })
  await expectRefusal('reused token', 'HOPGATE_ERR_JOIN_TOKEN_USED', () =>
    joinOverTls({ host: '127.0.0.1', port: tunnelPort, token }).catch(() => {}),
  )
  const stale = await createJoinToken(new FileTokenStore(edge.dir), {
    runnerId: 'runner-s',
    ttlMs: 60_000,
    edgeCaFingerprint: edge.pki.edgeCa.fingerprint.base64url,
    clock: wallManualClock(Date.now() - 3600_000),
  })
  await expectRefusal('expired token', 'HOPGATE_ERR_JOIN_TOKEN_EXPIRED', () =>
    joinOverTls({ host: '127.0.0.1', port: tunnelPort, token: stale }).catch(() => {}),
  )

  const dir = await enroll(tt, edge, 'runner-h')
  const identity = await loadRunnerIdentity(dir)
  await expectRefusal('hello names another runner', 'HOPGATE_ERR_CONTROL_ID_MISMATCH', async () => {
    const transport = await tunnelDialer(identity)(
      `127.0.0.1:${tunnelPort}`,
      new AbortController().signal,
    )
    const session = new Session(transport, { role: 'client' })
    tt.teardown(() => session.close())
    await agentHandshake(session, {
      registry: new TargetRegistry(),
      epochs: new EpochTable(),
      slot: 0,
      runnerId: 'runner-z',
      report,
    }).catch(() => {})
  })
  tt.equal(edge.edge.sessions.size, 0, 'no session was registered for any of them')
  tt.equal(
    await edge.sample('hopgate_edge_sessions', { connector: 'reverse' }),
    0,
    'session gauge at zero',
  )
})

t.test('GET /metrics on the admin API; the session gauge follows sessions', async (tt) => {
  const e = await testEdge(tt, { adminPort: 0 })
  const dir = await enroll(tt, e, 'runner-g')
  const agent = await testAgent(tt, { stateDir: dir, edges: [e.tunnel], slots: 2 })
  await until(() => e.edge.sessions.size === 2, 'two sessions')
  const res = await fetch(`http://127.0.0.1:${e.edge.admin!.address.port}/metrics`)
  tt.equal(res.status, 200)
  tt.match(res.headers.get('content-type'), /text\/plain/, 'Prometheus text format')
  const body = await res.text()
  tt.match(body, /hopgate_edge_sessions\{connector="reverse"\} 2/, 'two live sessions')
  tt.match(body, /hopgate_edge_sessions_opened_total\{connector="reverse"\} 2/)
  tt.notMatch(body, /runner-g/, 'no runner id anywhere in the metrics')
  await agent.close()
  await until(
    async () => (await e.sample('hopgate_edge_sessions', { connector: 'reverse' })) === 0,
    'gauge back to 0',
  )
  tt.pass('gauge back to 0 after the agent left')
})

t.test('a start that fails on a taken admin port closes the tunnel listener', async (tt) => {
  const dir = await tempDir(tt, 'edge')
  await initCa(dir, { edgeId: 'edge-1' })
  const blocker = net.createServer()
  blocker.listen(0, '127.0.0.1')
  await once(blocker, 'listening')
  tt.teardown(() => new Promise<void>((r) => blocker.close(() => r())))
  const taken = (blocker.address() as net.AddressInfo).port
  const probe = net.createServer()
  probe.listen(0, '127.0.0.1')
  await once(probe, 'listening')
  const tunnelPort = (probe.address() as net.AddressInfo).port
  await new Promise<void>((r) => probe.close(() => r()))

  await tt.rejects(
    startEdge({ stateDir: dir, tunnelPort, adminPort: taken }),
    { code: 'EADDRINUSE' },
    'the start fails on the taken admin port',
  )
  const again = net.createServer()
  again.listen(tunnelPort, '127.0.0.1')
  await once(again, 'listening')
  tt.pass('the tunnel port is free again: the listener was closed')
  await new Promise<void>((r) => again.close(() => r()))
  const edge = await startEdge({ stateDir: dir, tunnelPort, adminPort: 0 })
  tt.pass('and the same state dir starts cleanly (stores were closed too)')
  await edge.close()
})
