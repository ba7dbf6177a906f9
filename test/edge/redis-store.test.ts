// The RouteStore contract on Redis (store-contract.ts, with a real redis-server), then what only
// many edges sharing one Redis show: compare-and-set racing across two store instances (two
// edges), changes seen by the other edge's onChange within 1 s, per-edge session membership.
import t from 'tap'
import { ManualClock, systemClock } from '../../shared/clock.js'
import { isHopgateError } from '../../shared/errors.js'
import { RedisClient } from '../../edge/routing/redis-client.js'
import { RedisStore } from '../../edge/routing/redis-store.js'
import { RouteConflictError, type StoreChange } from '../../edge/routing/store.js'
import type { Clock } from '../../shared/clock.js'
import { redisAvailable, startRedis } from '../helpers/redis.js'
import { project, runnerInfo, type TapTest } from './routing-helpers.js'
import { storeContract } from './store-contract.js'

if (redisAvailable(t)) {
  const server = await startRedis(t)
  let n = 0
  const prefix = (): string => `t${process.pid}-${n++}:`

  const openClient = async (tt: TapTest, keyPrefix: string): Promise<RedisClient> => {
    // Timing is not under test here: a CPU-starved run must not read as an outage.
    const client = await RedisClient.connect({ url: server.url, keyPrefix, commandTimeoutMs: 5000 })
    tt.teardown(() => client.close())
    return client
  }
  const openStore = async (
    tt: TapTest,
    client: RedisClient,
    edgeId: string,
    clock: Clock = systemClock,
    wallClock?: () => number,
  ): Promise<RedisStore> => {
    const store = await RedisStore.open({
      client,
      clock,
      edgeId,
      ...(wallClock ? { wallClock } : {}),
    })
    tt.teardown(() => store.close())
    return store
  }

  storeContract(t, {
    name: 'redis',
    open: async (tt, clock, wallClock) =>
      openStore(tt, await openClient(tt, prefix()), 'edge-1', clock, wallClock),
    // PTTL is read a few ms after the SET PX on a loaded machine; 250 ms is far beyond that.
    leaseSlackMs: 250,
  })

  const P = project(7)

  t.test('two edges race CAS for one project: exactly one wins', async (tt) => {
    const keys = prefix()
    const a = await openStore(tt, await openClient(tt, keys), 'edge-a')
    const b = await openStore(tt, await openClient(tt, keys), 'edge-b')
    await a.casRoute(P, null, { runner: 'r-0', state: 'active' })
    for (let round = 1; round <= 20; round++) {
      const results = await Promise.allSettled([
        a.casRoute(P, round, { runner: 'r-a', state: 'active' }),
        b.casRoute(P, round, { runner: 'r-b', state: 'active' }),
      ])
      const won = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []))
      const lost = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []))
      if (won.length !== 1 || lost.length !== 1) {
        tt.fail(`round ${round}: ${won.length} winners`)
        return
      }
      const loser = lost[0]
      if (!(loser instanceof RouteConflictError) || loser.current?.epoch !== round + 1) {
        tt.fail(`round ${round}: the loser got ${String(loser)}`)
        return
      }
    }
    tt.pass('20 rounds: one winner and one typed RouteConflictError each')
    tt.equal((await b.getRoute(P))?.epoch, 21, 'both edges read the last epoch')
  })

  t.test('a change through one edge reaches the other edge within 1 s', async (tt) => {
    const keys = prefix()
    const a = await openStore(tt, await openClient(tt, keys), 'edge-a')
    const b = await openStore(tt, await openClient(tt, keys), 'edge-b')
    const seenByB: StoreChange[] = []
    const seenByA: StoreChange[] = []
    b.onChange((c) => seenByB.push(c))
    a.onChange((c) => seenByA.push(c))
    const started = performance.now()
    const waitB = new Promise<number>((resolve) =>
      b.onChange((c) => c.kind === 'route' && resolve(performance.now() - started)),
    )
    const route = await a.casRoute(P, null, { runner: 'r-a', state: 'active' })
    const ms = await Promise.race([waitB, new Promise<number>((r) => setTimeout(r, 1000, -1))])
    tt.ok(ms >= 0 && ms < 1000, `edge b heard the route change after ${ms.toFixed(1)} ms`)
    tt.same(seenByB[0], { kind: 'route', project: P, route })
    tt.equal(seenByA.length, 1, 'edge a heard its own change once, not again from pub/sub')

    await a.putRunner('r-a', runnerInfo({ edges: ['edge-a'] }), 10_000)
    await a.removeRunner('r-a')
    await until(() => seenByB.length === 3)
    tt.match(seenByB[1], { kind: 'runner', runnerId: 'r-a', runner: { edges: ['edge-a'] } })
    tt.same(seenByB[2], { kind: 'runner', runnerId: 'r-a', runner: null })
  })

  t.test('edges: each edge adds and drops only its own id', async (tt) => {
    const keys = prefix()
    const a = await openStore(tt, await openClient(tt, keys), 'edge-a')
    const b = await openStore(tt, await openClient(tt, keys), 'edge-b')
    await a.putRunner('r-x', runnerInfo({ edges: ['edge-a'] }), 10_000)
    // Edge b's hello names only itself (and, hostile or stale, edge-c): a keeps its entry.
    const both = await b.putRunner('r-x', runnerInfo({ edges: ['edge-b', 'edge-c'] }), 10_000)
    tt.same(both.edges, ['edge-a', 'edge-b'], 'b added itself, ignored edge-c, kept edge-a')
    const hb = await a.heartbeat('r-x', { edges: [] }, 10_000)
    tt.same(hb.edges, ['edge-b'], 'a dropped only itself')
    tt.same((await a.heartbeat('r-x', {}, 10_000)).edges, ['edge-b'], 'a renewal re-adds no one')
    // An entry expires on its own TTL: b's session stopped renewing.
    await b.heartbeat('r-x', {}, 150)
    await new Promise((r) => setTimeout(r, 300))
    tt.same((await a.getRunner('r-x'))?.edges, [], "b's entry expired with its own TTL")
    const later = await a.heartbeat('r-x', {}, 10_000)
    tt.same(later.edges, [], 'and a renewal by another edge does not bring it back')
    tt.ok(later.lease.expiresAt > systemClock.now() + 9_000, 'the runner lease is one per runner')
  })

  t.test('key prefixes keep two clusters on one server apart', async (tt) => {
    const a = await openStore(tt, await openClient(tt, prefix()), 'edge-a')
    const b = await openStore(tt, await openClient(tt, prefix()), 'edge-b')
    const heard: StoreChange[] = []
    b.onChange((c) => heard.push(c))
    await a.casRoute(P, null, { runner: 'r-a', state: 'active' })
    tt.equal(await b.getRoute(P), undefined)
    await new Promise((r) => setTimeout(r, 100))
    tt.equal(heard.length, 0, 'no event crossed the prefix')
  })

  t.test('a lease is judged by the injected Clock', async (tt) => {
    const clock = new ManualClock()
    const store = await openStore(tt, await openClient(tt, prefix()), 'edge-a', clock)
    const rec = await store.putRunner('r-a', runnerInfo(), 10_000)
    clock.advance(20_000)
    tt.ok(rec.lease.expiresAt < clock.now(), 'expired by the Clock even though Redis keeps it')
    const live = await store.getRunner('r-a')
    tt.ok(live!.lease.expiresAt > clock.now(), 'a fresh read measures PTTL from the Clock now')
  })

  t.test('typed errors', async (tt) => {
    const store = await openStore(tt, await openClient(tt, prefix()), 'edge-a')
    const e = await store.casRoute(P, 1.5, { runner: 'r-a', state: 'active' }).catch((x) => x)
    tt.ok(isHopgateError(e, 'HOPGATE_ERR_ROUTE_CONFLICT'), 'a non-integer epoch never matches')
  })
}

async function until(cond: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise((r) => setTimeout(r, 10))
  }
}
