// Redis outages against a real redis-server: frozen for 5 s (SIGSTOP: sockets stay open, nothing
// answers), cached projects keep resolving with 0 failures, others get HOPGATE_ERR_STORE_UNAVAILABLE
// within 0.5 s, a lease longer than the outage survives and heartbeats resume; killed and
// restarted on the same port, calls fail fast meanwhile and the store works again after.
import t from 'tap'
import { systemClock } from '../../shared/clock.js'
import { isHopgateError } from '../../shared/errors.js'
import { CachedStore } from '../../edge/routing/cached-store.js'
import { RedisClient } from '../../edge/routing/redis-client.js'
import { RedisStore } from '../../edge/routing/redis-store.js'
import { Router } from '../../edge/routing/router.js'
import type { StoreChange } from '../../edge/routing/store.js'
import { redisAvailable, startRedis } from '../helpers/redis.js'
import { project, runnerInfo, type TapTest } from './routing-helpers.js'

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

async function edge(tt: TapTest, url: string, edgeId: string) {
  const client = await RedisClient.connect({ url, keyPrefix: 'outage:', commandTimeoutMs: 300 })
  const redis = await RedisStore.open({ client, clock: systemClock, edgeId })
  const store = new CachedStore({ inner: redis, clock: systemClock })
  const router = new Router({ store, clock: systemClock })
  tt.teardown(async () => {
    await store.close()
    await client.close()
  })
  return { client, redis, store, router }
}

if (redisAvailable(t)) {
  t.test(
    'Redis frozen for 5 s: cached routes serve, others fail fast, leases survive',
    async (tt) => {
      const server = await startRedis(tt)
      const other = await edge(tt, server.url, 'edge-b')
      // Routed by edge b before edge a started: in Redis, but edge a never read or heard of it.
      const uncachedRouted = project(500)
      await other.store.casRoute(uncachedRouted, null, { runner: 'r-a', state: 'active' })
      const a = await edge(tt, server.url, 'edge-a')
      const LEASE_MS = 8000 // longer than the 5 s outage
      await a.store.putRunner(
        'r-a',
        runnerInfo({ edges: ['edge-a'], capacity: { maxProjects: 100, cpus: 4, memoryBytes: 1 } }),
        LEASE_MS,
      )
      const cached = Array.from({ length: 20 }, (_, i) => project(i + 1))
      for (const p of cached) await a.router.resolve(p) // placed on r-a, and now cached on edge a

      // The runner heartbeats over edge a's session every 250 ms, as the control channel does.
      let beatsOk = 0
      let beatsFailed = 0
      const beat = setInterval(() => {
        a.store.heartbeat('r-a', {}, LEASE_MS).then(
          () => beatsOk++,
          () => beatsFailed++,
        )
      }, 250)
      tt.teardown(() => clearInterval(beat))
      await sleep(600)

      server.pause()
      const outageEnds = performance.now() + 5000
      let served = 0
      let failures = 0
      const unknownLatencies: number[] = []
      const wrongErrors: unknown[] = []
      let i = 0
      while (performance.now() < outageEnds) {
        // Every cached project once per round, as steady traffic would.
        const results = await Promise.allSettled(cached.map((p) => a.router.resolve(p)))
        for (const r of results) {
          if (r.status === 'fulfilled') served++
          else failures++
        }
        // One project this edge never saw (half of them routed in Redis by edge b).
        const p = i++ % 2 === 0 ? project(1000 + i) : uncachedRouted
        const started = performance.now()
        const err = await a.router.resolve(p).then(
          () => undefined,
          (e: unknown) => e,
        )
        unknownLatencies.push(performance.now() - started)
        if (!isHopgateError(err, 'HOPGATE_ERR_STORE_UNAVAILABLE')) wrongErrors.push(err)
        await sleep(50)
      }
      const beatsBeforeResume = beatsOk
      server.resume()

      tt.ok(served > 20 * 10, `served ${served} resolves of cached projects during the outage`)
      tt.equal(failures, 0, 'no cached project failed during the outage')
      tt.ok(unknownLatencies.length >= 10, `${unknownLatencies.length} uncached resolves`)
      tt.same(wrongErrors, [], 'every uncached resolve answered HOPGATE_ERR_STORE_UNAVAILABLE')
      const worst = Math.max(...unknownLatencies)
      tt.ok(worst < 500, `uncached answered within 0.5 s (worst ${worst.toFixed(1)} ms)`)
      tt.ok(beatsFailed > 0, `${beatsFailed} heartbeats failed during the outage`)

      // Recovery: heartbeats succeed again and the lease, granted before the outage, is still there.
      const deadline = performance.now() + 3000
      while (beatsOk === beatsBeforeResume && performance.now() < deadline) await sleep(20)
      tt.ok(beatsOk > beatsBeforeResume, 'heartbeats resumed after the outage')
      const rec = await other.redis.getRunner('r-a')
      tt.ok(rec && rec.lease.expiresAt > systemClock.now(), 'the lease outlived the outage')
      tt.same(rec?.edges, ['edge-a'], "edge a's session entry outlived it too")
      const pttl = await a.client.cmd.pttl('outage:lease:r-a')
      tt.ok(pttl > LEASE_MS - 1000, `the lease key is renewed again (PTTL ${pttl} ms)`)
      tt.equal((await a.router.resolve(uncachedRouted)).runner, 'r-a', 'uncached projects resolve')
      tt.equal(a.store.stats.unavailable, unknownLatencies.length, 'the cache counted each refusal')
      tt.ok(a.store.stats.stale > 0, `${a.store.stats.stale} answers came from stale entries`)
    },
  )

  t.test('Redis killed and restarted: calls fail fast, then everything resumes', async (tt) => {
    const server = await startRedis(tt)
    const a = await edge(tt, server.url, 'edge-a')
    const b = await edge(tt, server.url, 'edge-b')
    const P = project(1)
    await a.store.casRoute(P, null, { runner: 'r-a', state: 'active' })
    await server.kill()
    await sleep(100)
    const started = performance.now()
    const err = await a.redis.getRoute(project(2)).catch((e: unknown) => e)
    const ms = performance.now() - started
    tt.ok(isHopgateError(err, 'HOPGATE_ERR_STORE_UNAVAILABLE'), 'refused while Redis is gone')
    tt.ok(ms < 500, `within 0.5 s (${ms.toFixed(1)} ms)`)
    tt.equal((await a.store.getRoute(P))?.runner, 'r-a', 'the cached route still answers')
    const casErr = await a.store
      .casRoute(project(3), null, { runner: 'r-a', state: 'active' })
      .catch((e: unknown) => e)
    tt.ok(isHopgateError(casErr, 'HOPGATE_ERR_STORE_UNAVAILABLE'), 'writes fail typed, too')

    await server.restart()
    // Reconnect, resubscribe, breaker closed: a change through b reaches a's onChange again.
    const heard: StoreChange[] = []
    a.store.onChange((c) => heard.push(c))
    const deadline = performance.now() + 5000
    let route
    while (!route && performance.now() < deadline) {
      route = await b.store
        .casRoute(project(4), null, { runner: 'r-b', state: 'active' })
        .catch(() => undefined)
      if (!route) await sleep(50)
    }
    tt.ok(route, 'writes work again after the restart')
    // The subscriber reconnects on its own schedule: keep changing routes until a hears one.
    for (let k = 5; heard.length === 0 && performance.now() < deadline; k++) {
      await b.store.casRoute(project(k), null, { runner: 'r-b', state: 'active' }).catch(() => {})
      await sleep(50)
    }
    tt.match(heard[0], { kind: 'route' }, 'pub/sub resumed')
    tt.equal(heard[0]?.kind === 'route' && heard[0].route.runner, 'r-b', 'with the change')
    tt.equal((await a.store.getRoute(project(4)))?.runner, 'r-b', 'reads work again')
  })
}
