// The Router over a real embedded store and a ManualClock: health (lease, draining), placement by
// headroom and its persistence, the typed refusals (503 unavailable / moving / no room, 404, 400).
// Store semantics are in route-store.test.ts; the randomized model in route-model.test.ts.
import t from 'tap'
import { ManualClock } from '../../shared/clock.js'
import { isHopgateError } from '../../shared/errors.js'
import { Router, headroom, placementOrder } from '../../edge/routing/router.js'
import {
  GiB,
  openStore,
  project,
  runnerInfo,
  tempStateDir,
  type TapTest,
} from './routing-helpers.js'

const P1 = project(1)

async function setup(tt: TapTest) {
  const clock = new ManualClock()
  const dir = await tempStateDir(tt)
  const store = await openStore(tt, dir, clock)
  return { clock, dir, store, router: new Router({ store, clock }) }
}

t.test('a lease expires on the Clock, with no sleeping; a heartbeat revives it', async (tt) => {
  const { clock, store, router } = await setup(tt)
  await store.putRunner('r-a', runnerInfo(), 1000)
  tt.ok(router.isHealthy((await store.getRunner('r-a'))!))
  clock.advance(999)
  tt.same(
    (await router.healthyRunners()).map((r) => r.runnerId),
    ['r-a'],
  )
  clock.advance(1)
  tt.notOk(router.isHealthy((await store.getRunner('r-a'))!), 'expired at exactly expiresAt')
  tt.same(await router.healthyRunners(), [])
  tt.same((await store.listRunners()).length, 1, 'still listed, just unhealthy')
  await store.heartbeat('r-a', {}, 1000)
  tt.equal((await router.healthyRunners()).length, 1)
  await store.heartbeat('r-a', { draining: true }, 1000)
  tt.same(await router.healthyRunners(), [], 'a draining runner is not healthy')
})

t.test('placement: the most headroom wins, and the placement persists', async (tt) => {
  const { clock, dir, store, router } = await setup(tt)
  await store.putRunner('r-small-disk', runnerInfo({ freeGiB: 20 }), 5000)
  await store.putRunner('r-roomy', runnerInfo({ freeGiB: 90 }), 5000)
  // Lots of disk, but 9 of 10 slots used: slots are its scarce resource.
  await store.putRunner('r-busy', runnerInfo({ freeGiB: 100, projects: 9 }), 5000)
  await store.putRunner('r-dead', runnerInfo({ freeGiB: 100 }), 10)
  clock.advance(10)

  const route = await router.resolve(P1)
  tt.match(route, { project: P1, runner: 'r-roomy', epoch: 1, state: 'active' })
  tt.same(await router.resolve(P1), route, 'a second resolve finds it, no second placement')
  tt.same(await router.get(P1), route)

  await store.close()
  const reopened = await openStore(tt, dir, clock)
  tt.same(await reopened.getRoute(P1), route, 'the placement survived a restart')
})

t.test('placement counts routes already placed, so a burst spreads out', async (tt) => {
  const { store, router } = await setup(tt)
  const cap = { maxProjects: 2, cpus: 1, memoryBytes: GiB }
  await store.putRunner('r-a', runnerInfo({ capacity: cap }), 5000)
  await store.putRunner('r-b', runnerInfo({ capacity: cap }), 5000)
  const placed = []
  for (let i = 0; i < 4; i++) placed.push((await router.resolve(project(i))).runner)
  tt.same(placed, ['r-a', 'r-b', 'r-a', 'r-b'], 'ties break by runner id, then load evens out')
  const full = await router.resolve(project(9)).catch((e) => e)
  tt.ok(isHopgateError(full, 'HOPGATE_ERR_RUNNER_NONE_AVAILABLE'), 'every slot taken')
  tt.equal(full.httpStatus, 503)
  tt.equal(await store.getRoute(project(9)), undefined, 'nothing persisted on failure')
})

t.test('concurrent first requests for one project share one placement', async (tt) => {
  const { store, router } = await setup(tt)
  await store.putRunner('r-a', runnerInfo(), 5000)
  const routes = await Promise.all(Array.from({ length: 10 }, () => router.resolve(P1)))
  tt.ok(routes.every((r) => r.epoch === 1 && r.runner === 'r-a'))
  // A second router (another edge sharing the store) racing it: the CAS loser adopts the winner.
  const other = new Router({ store, clock: new ManualClock() })
  await store.putRunner('r-b', runnerInfo({ freeGiB: 99 }), 5000)
  const P2 = project(2)
  const [x, y] = await Promise.all([router.resolve(P2), other.resolve(P2)])
  tt.same(x, y)
  tt.equal(x.epoch, 1)
})

t.test('an unhealthy runner gets no new placements and its routes are refused', async (tt) => {
  const { clock, store, router } = await setup(tt)
  await store.putRunner('r-a', runnerInfo({ freeGiB: 90 }), 1000)
  await store.putRunner('r-b', runnerInfo({ freeGiB: 10 }), 5000)
  await router.resolve(P1) // lands on r-a, the roomier one
  clock.advance(1000)
  const P2 = project(2)
  tt.equal((await router.resolve(P2)).runner, 'r-b', 'r-a is expired: the worse runner it is')

  const err = await router.resolve(P1).catch((e) => e)
  tt.ok(isHopgateError(err, 'HOPGATE_ERR_RUNNER_UNAVAILABLE'))
  tt.equal(err.httpStatus, 503)
  tt.match(err.message, /r-a.*lease expired/)
  tt.equal((await store.getRoute(P1))!.runner, 'r-a', 'not moved: moves are explicit')

  await store.heartbeat('r-b', { draining: true }, 5000)
  await tt.rejects(router.resolve(P2), { code: 'HOPGATE_ERR_RUNNER_UNAVAILABLE' })
  await tt.rejects(router.resolve(project(3)), { code: 'HOPGATE_ERR_RUNNER_NONE_AVAILABLE' })

  await store.removeRunner('r-a')
  await tt.rejects(router.resolve(P1), { code: 'HOPGATE_ERR_RUNNER_UNAVAILABLE' })
})

t.test('route states: moving is refused, draining still serves', async (tt) => {
  const { store, router } = await setup(tt)
  await store.putRunner('r-a', runnerInfo(), 5000)
  await store.casRoute(P1, null, { runner: 'r-a', state: 'moving' })
  const err = await router.resolve(P1).catch((e) => e)
  tt.ok(isHopgateError(err, 'HOPGATE_ERR_ROUTE_MOVING'))
  tt.equal(err.httpStatus, 503)
  await store.casRoute(P1, 1, { runner: 'r-a', state: 'draining' })
  tt.equal((await router.resolve(P1)).state, 'draining')
})

t.test('lookups: unknown project is 404, malformed ids are 400', async (tt) => {
  const { router } = await setup(tt)
  const missing = await router.get(P1).catch((e) => e)
  tt.ok(isHopgateError(missing, 'HOPGATE_ERR_ROUTE_NOT_FOUND'))
  tt.equal(missing.httpStatus, 404)
  for (const id of [P1.toUpperCase().replace('0', 'A'), 'nope', '']) {
    await tt.rejects(router.resolve(id), { code: 'HOPGATE_ERR_ROUTE_PROJECT_INVALID' })
    await tt.rejects(router.get(id), { code: 'HOPGATE_ERR_ROUTE_PROJECT_INVALID' })
  }
  await tt.rejects(router.resolve(P1), { code: 'HOPGATE_ERR_RUNNER_NONE_AVAILABLE' })
})

t.test('headroom is the scarcer of free storage and free slots', async (tt) => {
  const base = { lease: { expiresAt: 1 }, edges: [], draining: false, registeredAt: 0 }
  const rec = (runnerId: string, freeGiB: number, projects: number, maxProjects = 10) => ({
    ...base,
    ...runnerInfo({ freeGiB, capacity: { maxProjects, cpus: 1, memoryBytes: GiB } }),
    runnerId,
    projects,
    lastHeartbeatAt: 0,
  })
  tt.equal(headroom(rec('a', 50, 0), 0), 0.5, 'storage-bound')
  tt.equal(headroom(rec('a', 90, 8), 8), 0.2, 'slot-bound')
  tt.equal(headroom(rec('a', 90, 0, 0), 0), 0, 'no slots at all')
  const order = placementOrder(
    [rec('c', 50, 0), rec('b', 50, 0), rec('full', 99, 10), rec('a', 60, 5)],
    new Map([['b', 1]]),
  )
  // a: min(0.6, 0.5) = 0.5; b: min(0.5, 0.9) = 0.5 with load 1; c: 0.5 with load 0; full: no slot.
  tt.same(
    order.map((r) => r.runnerId),
    ['a', 'c', 'b'],
  )
})
