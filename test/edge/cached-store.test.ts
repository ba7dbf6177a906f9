// CachedStore: the 5 s cache, replacement by change events, stale-if-error for 60 s, bounded
// reads, resync and the local lease extension, on a ManualClock over a store that can be made
// to fail or hang; then, with a real redis-server, a route change made through one edge obeyed by
// another edge's router within 1 s.
import t from 'tap'
import { ManualClock, systemClock } from '../../shared/clock.js'
import { HopgateError, isHopgateError } from '../../shared/errors.js'
import { CachedStore } from '../../edge/routing/cached-store.js'
import { RedisClient } from '../../edge/routing/redis-client.js'
import { RedisStore } from '../../edge/routing/redis-store.js'
import { Router } from '../../edge/routing/router.js'
import type { ChangeListener, RouteStore } from '../../edge/routing/store.js'
import { redisAvailable, startRedis } from '../helpers/redis.js'
import { openStore, project, runnerInfo, tempStateDir, type TapTest } from './routing-helpers.js'

const P = project(1)

/** An embedded store behind a switch: `down` fails every call, `hang` never answers reads. */
async function flaky(tt: TapTest, clock: ManualClock) {
  const base = await openStore(tt, await tempStateDir(tt), clock)
  const ctl = { down: false, hang: false, reads: 0, resync: [] as Array<() => void> }
  const gate = <T>(p: () => Promise<T>): Promise<T> => {
    if (ctl.down) return Promise.reject(new HopgateError('HOPGATE_ERR_STORE_UNAVAILABLE'))
    if (ctl.hang) return new Promise<T>(() => {})
    return p()
  }
  const listeners = new Set<ChangeListener>()
  base.onChange((c) => listeners.forEach((l) => l(c)))
  const inner: RouteStore & { onResync(l: () => void): () => void } = {
    getRoute: (p) => gate(() => (ctl.reads++, base.getRoute(p))),
    getRunner: (r) => gate(() => (ctl.reads++, base.getRunner(r))),
    casRoute: (p, e, n) => gate(() => base.casRoute(p, e, n)),
    listRoutes: () => gate(() => base.listRoutes()),
    listRunners: () => gate(() => base.listRunners()),
    putRunner: (r, i, ttl) => gate(() => base.putRunner(r, i, ttl)),
    heartbeat: (r, p, ttl) => gate(() => base.heartbeat(r, p, ttl)),
    removeRunner: (r) => gate(() => base.removeRunner(r)),
    onChange: (l) => (listeners.add(l), () => listeners.delete(l)),
    onResync: (l) => (ctl.resync.push(l), () => {}),
    close: () => base.close(),
  }
  return { base, inner, ctl }
}

t.test('entries answer for 5 s, then the store is asked again', async (tt) => {
  const clock = new ManualClock()
  const { base, inner, ctl } = await flaky(tt, clock)
  const route = await base.casRoute(P, null, { runner: 'r-a', state: 'active' })
  const store = new CachedStore({ inner, clock }) // after the change: it heard no event of it
  ctl.reads = 0
  tt.same(await store.getRoute(P), route)
  tt.same(await store.getRoute(P), route)
  clock.advance(4999)
  tt.same(await store.getRoute(P), route)
  tt.equal(ctl.reads, 1, 'one read for three answers within 5 s')
  clock.advance(2)
  await store.getRoute(P)
  tt.equal(ctl.reads, 2, 'asked again after 5 s')
  tt.equal(await store.getRoute(project(2)), undefined)
  tt.equal(await store.getRoute(project(2)), undefined)
  tt.equal(ctl.reads, 4, 'no route is never cached: another edge may create it any moment')
  tt.match(store.stats, { hits: 2, misses: 4 })
})

t.test('change events replace entries at once; a read racing one cannot undo it', async (tt) => {
  const clock = new ManualClock()
  const { base, inner, ctl } = await flaky(tt, clock)
  const store = new CachedStore({ inner, clock })
  await base.casRoute(P, null, { runner: 'r-a', state: 'active' })
  await store.getRoute(P)
  const moved = await base.casRoute(P, 1, { runner: 'r-b', state: 'active' })
  ctl.reads = 0
  tt.same(await store.getRoute(P), moved, 'the event replaced the entry')
  tt.equal(ctl.reads, 0, 'without asking the store')

  // A slow read that started before a change must not cache its older answer over the event's.
  clock.advance(6000)
  let release!: () => void
  const slow = new Promise<void>((r) => (release = r))
  const old = await base.getRoute(P)
  const racing = (p: string) => base.getRoute(p)
  inner.getRoute = async () => (await slow, old)
  const pending = store.getRoute(P)
  const newer = await base.casRoute(P, 2, { runner: 'r-c', state: 'active' })
  release()
  tt.same(await pending, old, 'the racing read answers what it read')
  inner.getRoute = racing
  tt.same(await store.getRoute(P), newer, 'but the cache holds the newer route')

  await store.putRunner('r-a', runnerInfo(), 1000)
  ctl.reads = 0
  await store.getRunner('r-a')
  await base.removeRunner('r-a')
  tt.equal(await store.getRunner('r-a'), undefined, 'a removal event drops the runner')
  tt.equal(ctl.reads, 1, 'and the next read asks the store')
})

t.test('stale-if-error: 60 s of known answers, then a typed refusal', async (tt) => {
  const clock = new ManualClock()
  const { base, inner, ctl } = await flaky(tt, clock)
  const store = new CachedStore({ inner, clock })
  const route = await base.casRoute(P, null, { runner: 'r-a', state: 'active' })
  await store.getRoute(P)
  ctl.down = true
  clock.advance(10_000)
  tt.same(await store.getRoute(P), route, 'expired, but served while the store is down')
  await tt.rejects(store.getRoute(project(2)), { code: 'HOPGATE_ERR_STORE_UNAVAILABLE' })
  clock.advance(49_999)
  tt.same(await store.getRoute(P), route, 'still at 59.999 s since the store confirmed it')
  clock.advance(1)
  await tt.rejects(store.getRoute(P), { code: 'HOPGATE_ERR_STORE_UNAVAILABLE' }, 'not at 60 s')
  tt.match(store.stats, { stale: 2, unavailable: 2 })
  ctl.down = false
  tt.same(await store.getRoute(P), route, 'answers again once the store is back')
})

t.test('a read that hangs is cut at readTimeoutMs', async (tt) => {
  const clock = new ManualClock()
  const { base, inner, ctl } = await flaky(tt, clock)
  const store = new CachedStore({ inner, clock, readTimeoutMs: 400 })
  const route = await base.casRoute(P, null, { runner: 'r-a', state: 'active' })
  await store.getRoute(P)
  clock.advance(6000)
  ctl.hang = true
  const stale = store.getRoute(P)
  const unknown = store.getRoute(project(2)).catch((e: unknown) => e)
  clock.advance(399)
  let settled = false
  void stale.then(() => (settled = true))
  await new Promise((r) => setImmediate(r))
  tt.notOk(settled, 'still waiting at 399 ms')
  clock.advance(1)
  tt.same(await stale, route, 'the known route answers at 400 ms')
  tt.ok(
    isHopgateError(await unknown, 'HOPGATE_ERR_STORE_UNAVAILABLE'),
    'the unknown one is refused',
  )
  tt.equal(clock.pending, 0, 'no deadline timer is left behind')
})

t.test('resync and failed heartbeats', async (tt) => {
  const clock = new ManualClock()
  const { base, inner, ctl } = await flaky(tt, clock)
  const store = new CachedStore({ inner, clock })
  await base.casRoute(P, null, { runner: 'r-a', state: 'active' })
  await store.getRoute(P)
  ctl.reads = 0
  ctl.resync.forEach((l) => l())
  await store.getRoute(P)
  tt.equal(ctl.reads, 1, 'after a resync (events may be lost) the store is asked again')

  const rec = await store.putRunner('r-a', runnerInfo(), 1000)
  tt.equal(rec.lease.expiresAt, 1000)
  ctl.down = true
  clock.advance(900)
  await tt.rejects(store.heartbeat('r-a', {}, 1000), { code: 'HOPGATE_ERR_STORE_UNAVAILABLE' })
  clock.advance(4200)
  const cached = await store.getRunner('r-a')
  tt.equal(cached?.lease.expiresAt, 1900, 'the heartbeat seen here extended the cached lease')
  ctl.down = false
  tt.equal((await store.getRunner('r-a'))?.lease.expiresAt, 1000, 'the store still says 1000')
})

if (redisAvailable(t)) {
  t.test('a route change through one edge is obeyed by another within 1 s', async (tt) => {
    const server = await startRedis(tt)
    const edge = async (edgeId: string) => {
      // Only the 1 s bound is under test: a CPU-starved run must not read as an outage.
      const client = await RedisClient.connect({ url: server.url, commandTimeoutMs: 5000 })
      const store = new CachedStore({
        inner: await RedisStore.open({ client, clock: systemClock, edgeId }),
        clock: systemClock,
        readTimeoutMs: 5000,
      })
      tt.teardown(async () => {
        await store.close()
        await client.close()
      })
      return { store, router: new Router({ store, clock: systemClock }) }
    }
    const a = await edge('edge-a')
    const b = await edge('edge-b')
    await a.store.putRunner('r-a', runnerInfo(), 30_000)
    await a.store.putRunner('r-b', runnerInfo(), 30_000)
    const first = await a.router.resolve(P)
    const target = first.runner === 'r-a' ? 'r-b' : 'r-a'
    await b.router.resolve(P) // cached on b too
    const hitsBefore = b.store.stats.hits
    const started = performance.now()
    await a.store.casRoute(P, first.epoch, { runner: target, state: 'active' })
    let seen = (await b.router.resolve(P)).runner
    while (seen !== target && performance.now() - started < 1000) {
      await new Promise((r) => setTimeout(r, 5))
      seen = (await b.router.resolve(P)).runner
    }
    const ms = performance.now() - started
    tt.equal(seen, target, `edge b routes to the new runner after ${ms.toFixed(1)} ms`)
    tt.ok(ms < 1000, 'within 1 s')
    tt.ok(b.store.stats.hits > hitsBefore, "from b's cache, updated by pub/sub, not by expiry")
  })
}
