// The first connection after an agent's session comes up must be served. It used not to be when
// claiming the agent's routes (one durable store write per project) took most of the lease the
// hello had granted: the lease lapsed before the agent's first heartbeat (one interval after the
// welcome), and for that gap every edge refused the runner as unhealthy (test/cluster/
// forwarding.test.ts saw it under load). Here the store's route writes are slowed past the lease
// on purpose (a real EmbeddedStore behind a delaying wrapper), so the gap is certain, not a race.
import t from 'tap'
import { systemClock } from '../../shared/clock.js'
import { EmbeddedStore } from '../../edge/routing/embedded-store.js'
import type { RouteStore } from '../../edge/routing/store.js'
import { parseTcpMapping } from '../../edge/ingress/tcp.js'
import { echoServer, tempDir } from '../helpers/echo.js'
import { echoClient, enroll, testAgent, testEdge, until } from './_cluster.js'

const P = '5d3a1c2b-8e7f-4a6b-9c0d-1e2f3a4b5c6d'

/** The store, with every casRoute resolving `delayMs` late (a slow disk or a busy Redis). */
function slowRouteWrites(store: EmbeddedStore, delayMs: number): RouteStore {
  return new Proxy(store, {
    get(target, key) {
      if (key === 'casRoute') {
        return async (...args: Parameters<RouteStore['casRoute']>) => {
          const route = await target.casRoute(...args)
          await new Promise((r) => setTimeout(r, delayMs))
          return route
        }
      }
      const v = Reflect.get(target, key, target) as unknown
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v
    },
  })
}

t.test(
  'slow route claims: the lease counts from the welcome, the first connection works',
  async (tt) => {
    const heartbeatIntervalMs = 200
    const leaseTtlMs = 3 * heartbeatIntervalMs
    const store = await EmbeddedStore.open({
      stateDir: await tempDir(tt, 'routes'),
      clock: systemClock,
    })
    tt.teardown(() => store.close())
    const echoPort = await echoServer(tt)
    const e = await testEdge(tt, {
      heartbeatIntervalMs,
      leaseTtlMs,
      routeStore: slowRouteWrites(store, leaseTtlMs + 200),
      tcp: [parseTcpMapping(`127.0.0.1:0=${P}:${echoPort}`)],
    })
    const dir = await enroll(tt, e, 'runner-slow')
    await testAgent(tt, {
      stateDir: dir,
      edges: [e.tunnel],
      projects: { [P]: { host: '127.0.0.1', allowedPorts: [echoPort] } },
    })
    await until(
      () => e.edge.sessions.pick('runner-slow') !== undefined,
      'session registered',
      10_000,
    )
    const runner = await store.getRunner('runner-slow')
    tt.ok(runner, 'the runner is registered')
    tt.ok(
      runner!.lease.expiresAt > systemClock.now(),
      'its lease is live the moment the edge can pick its session',
    )
    const client = await echoClient(e.edge.tcp[0]!.address.port)
    const answer = await Promise.race([
      client.roundTrip('first').catch(() => 'reset'),
      client.closed.then(() => 'closed empty'),
    ])
    tt.equal(answer, 'first', 'the very first connection is served')
    client.socket.destroy()
  },
)

t.test('the agent heartbeats at once after the welcome, not one interval later', async (tt) => {
  // An interval far longer than the test: only an immediate first heartbeat yields an RTT.
  const e = await testEdge(tt, { heartbeatIntervalMs: 600_000 })
  const dir = await enroll(tt, e, 'runner-hb')
  const agent = await testAgent(tt, { stateDir: dir, edges: [e.tunnel] })
  await until(() => agent.controls().length === 1, 'session up')
  await until(() => agent.controls()[0]!.rttMs() !== undefined, 'first heartbeat answered')
  tt.ok(agent.controls()[0]!.rttMs()! >= 0, 'the first heartbeat was answered (RTT measured)')
})
