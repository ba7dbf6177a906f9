// A real edge on Redis (startEdge with store redis://): a runner enrolls with a join token kept in
// Redis, connects, its lease, session entry and route land in Redis, bytes flow through raw TCP
// ingress, and a revocation made by another edge's stores closes its sessions at once.
import t from 'tap'
import net from 'node:net'
import { initCa } from '../../certs/pki.js'
import { startEdge } from '../../edge/edge.js'
import { openStores } from '../../edge/stores.js'
import { RedisClient } from '../../edge/routing/redis-client.js'
import { startAgent } from '../../agent/agent.js'
import { tempDir } from '../helpers/echo.js'
import { redisAvailable, startRedis } from '../helpers/redis.js'
import { enroll, report } from '../helpers/runner.js'
import { until } from '../helpers/until.js'
import type { TapTest } from './routing-helpers.js'

const P = '0f8fad5b-d9cb-469f-a165-70867728950e'

/**
 * An echo service whose teardown destroys its connections: server.close() alone waits for them,
 * and a target connection the revoked runner's agent left open must not stall the teardown.
 */
async function echo(tt: TapTest): Promise<number> {
  const sockets = new Set<net.Socket>()
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
    s.on('error', () => {})
    s.pipe(s)
  })
  server.listen(0, '127.0.0.1')
  await new Promise((r) => server.once('listening', r))
  tt.teardown(
    () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy()
        server.close(() => r())
      }),
  )
  return (server.address() as net.AddressInfo).port
}

/** One echo round trip through raw TCP ingress; retried, as a loaded machine may refuse once. */
async function roundTrip(port: number): Promise<string> {
  let last: unknown
  for (let attempt = 0; attempt < 5; attempt++) {
    const sock = net.connect(port, '127.0.0.1')
    try {
      const got = await new Promise<string>((resolve, reject) => {
        sock.once('data', (d: Buffer) => resolve(d.toString()))
        sock.once('close', () => reject(new Error('closed without an answer')))
        sock.once('error', reject)
        sock.setTimeout(5000, () => reject(new Error('no answer in 5 s')))
        sock.write('ping')
      })
      return got
    } catch (err) {
      last = err
    } finally {
      sock.destroy()
    }
  }
  throw last
}

if (redisAvailable(t)) {
  t.test('an edge on Redis: join, route, bytes, revocation from another edge', async (tt) => {
    const server = await startRedis(tt)
    const edgeDir = await tempDir(tt, 'redis-edge')
    await initCa(edgeDir, { edgeId: 'edge-1' })
    const echoPort = await echo(tt)
    const edge = await startEdge({
      stateDir: edgeDir,
      store: server.url,
      storeKeyPrefix: 'e2e:',
      // Timing is not under test here: a CPU-starved run must not read as an outage.
      storeTuning: { commandTimeoutMs: 5000, cache: { readTimeoutMs: 5000 } },
      tunnelPort: 0,
      // The periodic revocation re-read runs every 60 s: only pub/sub can close the sessions
      // below within the test.
      heartbeatIntervalMs: 60_000,
      tcp: [{ host: '127.0.0.1', port: 0, project: P, projectPort: echoPort }],
    })
    tt.teardown(() => edge.close())
    tt.equal(edge.stores.choice.kind, 'redis')
    // Another edge of the cluster: same Redis, same prefix, its own id.
    const other = await openStores({
      store: server.url,
      keyPrefix: 'e2e:',
      stateDir: await tempDir(tt, 'redis-edge2'),
      edgeId: 'edge-2',
      commandTimeoutMs: 5000,
    })
    tt.teardown(() => other.close())

    // The token is made through the other edge: any edge of the cluster can spend it.
    const port = edge.tunnel.address.port
    const agentDir = await enroll(tt, edgeDir, port, 'runner-a', other.tokens)
    tt.ok((await other.tokens.list())[0]?.usedAt, 'the token is spent, in Redis')
    const agent = await startAgent({
      stateDir: agentDir,
      edges: [`127.0.0.1:${port}`],
      slots: 2,
      projects: { [P]: { host: '127.0.0.1', allowedPorts: [echoPort] } },
      report,
    })
    tt.teardown(() => agent.close())
    await until(() => edge.sessions.sessions('runner-a').length === 2, 'two sessions')
    await until(async () => (await other.routes.getRoute(P)) !== undefined, 'P routed in Redis')
    const runner = await other.routes.getRunner('runner-a')
    tt.match(runner, { runnerId: 'runner-a', edges: ['edge-1'] }, 'seen from the other edge')
    tt.ok(runner!.lease.expiresAt > performance.now(), 'with a live lease')

    tt.equal(await roundTrip(edge.tcp[0]!.address.port), 'ping', 'bytes flow through the tunnel')

    // Revoked at the other edge: this edge hears it by pub/sub and closes the sessions.
    const started = performance.now()
    await other.revocation.revoke('runner-a', { reason: 'test' })
    await until(() => edge.sessions.sessions('runner-a').length === 0, 'sessions closed', 10_000)
    const ms = performance.now() - started
    tt.ok(edge.revocation.isRevoked('runner-a'), 'the edge denies the runner')
    tt.pass(`sessions closed ${ms.toFixed(0)} ms after another edge revoked the runner`)
  })
}

if (redisAvailable(t)) {
  t.test('a start that fails after opening Redis closes its connections', async (tt) => {
    const server = await startRedis(tt)
    const edgeDir = await tempDir(tt, 'redis-edge-fail')
    await initCa(edgeDir, { edgeId: 'edge-1' })
    const busy = net.createServer().listen(0, '127.0.0.1')
    await new Promise((r) => busy.once('listening', r))
    tt.teardown(() => new Promise<void>((r) => busy.close(() => r())))
    const err = await startEdge({
      stateDir: edgeDir,
      store: server.url,
      tunnelPort: (busy.address() as net.AddressInfo).port,
    }).catch((e: unknown) => e)
    tt.match(err, { code: 'EADDRINUSE' }, 'the tunnel port is taken')
    const watcher = await RedisClient.connect({ url: server.url, commandTimeoutMs: 5000 })
    tt.teardown(() => watcher.close())
    const clients = async () =>
      String(await watcher.cmd.call('CLIENT', 'LIST'))
        .trim()
        .split('\n').length
    await until(async () => (await clients()) === 2, 'only the watcher connected', 3000)
    tt.equal(await clients(), 2, "the failed edge's two connections are gone")
  })
}
