// The RouteStore contract on the embedded store: compare-and-set with epochs (including 50 truly
// concurrent CAS), id validation, runner registration, leases on a ManualClock, change events.
// Persistence across restarts is in route-persistence.test.ts; placement in router.test.ts.
import t from 'tap'
import { ManualClock } from '../../shared/clock.js'
import { isHopgateError } from '../../shared/errors.js'
import { RouteConflictError, type StoreChange } from '../../edge/routing/store.js'
import { openStore, project, runnerInfo, tempStateDir } from './routing-helpers.js'

const P1 = project(1)

t.test('create, then every CAS bumps the epoch by exactly 1', async (tt) => {
  const store = await openStore(tt, await tempStateDir(tt), new ManualClock())
  tt.equal(await store.getRoute(P1), undefined)
  const r1 = await store.casRoute(P1, null, { runner: 'r-a', state: 'active' })
  tt.match(r1, { project: P1, runner: 'r-a', epoch: 1, state: 'active' })
  const r2 = await store.casRoute(P1, 1, { runner: 'r-b', state: 'moving' })
  tt.equal(r2.epoch, 2)
  // Rewriting identical fields is still a change: an epoch is never handed out twice.
  const r3 = await store.casRoute(P1, 2, { runner: 'r-b', state: 'moving' })
  tt.equal(r3.epoch, 3)
  tt.same(await store.getRoute(P1), r3)
  tt.same(await store.listRoutes(), [r3])
})

t.test('a stale expected epoch loses and carries the current route', async (tt) => {
  const store = await openStore(tt, await tempStateDir(tt), new ManualClock())
  await store.casRoute(P1, null, { runner: 'r-a', state: 'active' })
  const cur = await store.casRoute(P1, 1, { runner: 'r-b', state: 'active' })

  const stale = await store.casRoute(P1, 1, { runner: 'r-c', state: 'active' }).catch((e) => e)
  tt.ok(stale instanceof RouteConflictError)
  tt.ok(isHopgateError(stale, 'HOPGATE_ERR_ROUTE_CONFLICT'))
  tt.equal(stale.httpStatus, 409)
  tt.same(stale.current, cur)
  tt.equal(stale.expectedEpoch, 1)

  const dupCreate = await store
    .casRoute(P1, null, { runner: 'r-c', state: 'active' })
    .catch((e) => e)
  tt.same((dupCreate as RouteConflictError).current, cur, 'create over an existing route loses')

  const P2 = project(2)
  const noRoute = await store.casRoute(P2, 1, { runner: 'r-c', state: 'active' }).catch((e) => e)
  tt.ok(isHopgateError(noRoute, 'HOPGATE_ERR_ROUTE_CONFLICT'))
  tt.equal((noRoute as RouteConflictError).current, undefined, 'no route to compare with')
  tt.same(await store.getRoute(P1), cur, 'losers changed nothing')
})

t.test('50 concurrent CAS with the same expected epoch: exactly one wins', async (tt) => {
  const store = await openStore(tt, await tempStateDir(tt), new ManualClock())
  await store.casRoute(P1, null, { runner: 'r-0', state: 'active' })
  const results = await Promise.allSettled(
    Array.from({ length: 50 }, (_, i) =>
      store.casRoute(P1, 1, { runner: `r-${i}`, state: 'active' }),
    ),
  )
  const won = results.filter((r) => r.status === 'fulfilled')
  const lost = results.filter((r) => r.status === 'rejected')
  tt.equal(won.length, 1)
  tt.equal(lost.length, 49)
  const winner = won[0]!.value
  tt.equal(winner.epoch, 2)
  for (const l of lost) tt.same((l.reason as RouteConflictError).current, winner)
  tt.same(await store.getRoute(P1), winner)

  // And 50 concurrent creates of 50 distinct projects all win, each at epoch 1.
  const creates = await Promise.all(
    Array.from({ length: 50 }, (_, i) =>
      store.casRoute(project(100 + i), null, { runner: 'r-0', state: 'active' }),
    ),
  )
  tt.ok(creates.every((r) => r.epoch === 1))
  tt.equal((await store.listRoutes()).length, 51)
})

t.test('project and runner ids are refused, never normalised', async (tt) => {
  const store = await openStore(tt, await tempStateDir(tt), new ManualClock())
  const hexy = '3f2a9c4e-7b1d-4e8a-9f0c-2d4b6a8e1c3f'
  const bad = [
    hexy.toUpperCase(),
    `3F2A9C4E${hexy.slice(8)}`,
    `{${hexy}}`,
    hexy.replaceAll('-', ''),
    ` ${hexy}`,
    `${hexy}\n`,
    'not-a-uuid',
    '',
    '00000000-0000-4000-8000-00000000000g',
  ]
  for (const id of bad) {
    const e = await store.casRoute(id, null, { runner: 'r-a', state: 'active' }).catch((x) => x)
    tt.ok(
      isHopgateError(e, 'HOPGATE_ERR_ROUTE_PROJECT_INVALID'),
      `cas refuses ${JSON.stringify(id)}`,
    )
    tt.equal(e.httpStatus, 400)
    await tt.rejects(store.getRoute(id), { code: 'HOPGATE_ERR_ROUTE_PROJECT_INVALID' })
  }
  for (const runner of ['R-A', '-a', 'a/b', '', 'a'.repeat(64)]) {
    await tt.rejects(store.casRoute(P1, null, { runner, state: 'active' }), {
      code: 'HOPGATE_ERR_RUNNER_INVALID',
    })
    await tt.rejects(store.putRunner(runner, runnerInfo(), 1000), {
      code: 'HOPGATE_ERR_RUNNER_INVALID',
    })
  }
  await tt.rejects(store.casRoute(P1, null, { runner: 'r-a', state: 'gone' as 'active' }), {
    code: 'HOPGATE_ERR_ROUTE_STATE_INVALID',
  })
  tt.same(await store.listRoutes(), [], 'nothing was written')
})

t.test('runner records: hostile numbers and bad lease TTLs are refused', async (tt) => {
  const store = await openStore(tt, await tempStateDir(tt), new ManualClock())
  const bad = [
    runnerInfo({ capacity: { maxProjects: -1, cpus: 1, memoryBytes: 1 } }),
    runnerInfo({ capacity: { maxProjects: 1.5, cpus: 1, memoryBytes: 1 } }),
    runnerInfo({ storage: { freeBytes: 10, totalBytes: 5 } }),
    runnerInfo({ projects: Number.NaN }),
  ]
  for (const info of bad) {
    await tt.rejects(store.putRunner('r-a', info, 1000), { code: 'HOPGATE_ERR_RUNNER_INVALID' })
  }
  for (const ttl of [0, -5, Number.NaN, Infinity]) {
    await tt.rejects(store.putRunner('r-a', runnerInfo(), ttl), {
      code: 'HOPGATE_ERR_RUNNER_INVALID',
    })
  }
  tt.same(await store.listRunners(), [])
})

t.test('leases: granted by putRunner, renewed by heartbeat, judged by the Clock', async (tt) => {
  const clock = new ManualClock()
  const store = await openStore(tt, await tempStateDir(tt), clock, { wallClock: () => 1_000 })
  await tt.rejects(store.heartbeat('r-a', {}, 1000), { code: 'HOPGATE_ERR_RUNNER_UNKNOWN' })

  const reg = await store.putRunner('r-a', runnerInfo({ directAddress: '10.0.0.1:7443' }), 1000)
  tt.match(reg, {
    runnerId: 'r-a',
    lease: { expiresAt: 1000 },
    projects: 0,
    edges: [],
    draining: false,
  })
  tt.equal(reg.registeredAt, 1_000)
  clock.advance(900)
  const hb = await store.heartbeat('r-a', { projects: 3, edges: ['edge-1'] }, 1000)
  tt.equal(hb.lease.expiresAt, 1900, 'renewed from now, not from the old expiry')
  tt.equal(hb.projects, 3)
  tt.same(hb.edges, ['edge-1'])
  tt.equal(hb.directAddress, '10.0.0.1:7443', 'absent fields keep their value')
  tt.same(await store.getRunner('r-a'), hb)

  // Re-registration (a new session) replaces reported fields but keeps registeredAt.
  const again = await store.putRunner('r-a', runnerInfo(), 500)
  tt.equal(again.directAddress, undefined)
  tt.equal(again.projects, 0)
  tt.equal(again.lease.expiresAt, 1400, 'a new registration grants its own TTL from now')
  tt.equal(again.registeredAt, 1_000)

  tt.equal(await store.removeRunner('r-a'), true)
  tt.equal(await store.removeRunner('r-a'), false)
  tt.equal(await store.getRunner('r-a'), undefined)
})

t.test('a heartbeat landing while a registration is being written is not lost', async (tt) => {
  const store = await openStore(tt, await tempStateDir(tt), new ManualClock())
  await store.putRunner('r-a', runnerInfo(), 1000)
  const reregister = store.putRunner('r-a', runnerInfo({ projects: 2 }), 100)
  // Timers of equal delay fire in order, so the store's write has started by the time this runs.
  await new Promise((r) => setTimeout(r, 0))
  const hb = await store.heartbeat('r-a', { projects: 7 }, 5000)
  tt.equal(hb.lease.expiresAt, 5000)
  const rec = await reregister
  tt.equal(rec.projects, 2)
  const live = (await store.getRunner('r-a'))!
  tt.equal(live.lease.expiresAt, 5000, 'the renewal made meanwhile is not shortened')
  tt.equal(live.projects, 2, 'the registration, committed last, wins the reported fields')
  tt.ok(Object.isFrozen(live) && Object.isFrozen(live.lease), 'shared records are frozen')
})

t.test('change events: after the write, in order; unsubscribe stops them', async (tt) => {
  const store = await openStore(tt, await tempStateDir(tt), new ManualClock())
  const seen: StoreChange[] = []
  const off = store.onChange((c) => seen.push(c))
  store.onChange(() => {
    throw new Error('a buggy subscriber')
  })
  const warnings: Error[] = []
  const onWarning = (w: Error): number => warnings.push(w)
  process.on('warning', onWarning)
  tt.teardown(() => process.off('warning', onWarning))

  await store.putRunner('r-a', runnerInfo(), 1000)
  const r1 = await store.casRoute(P1, null, { runner: 'r-a', state: 'active' })
  await store.casRoute(P1, 5, { runner: 'r-a', state: 'active' }).catch(() => undefined)
  await store.heartbeat('r-a', { projects: 1 }, 1000) // stats only: no event
  const drained = await store.heartbeat('r-a', { draining: true }, 1000)
  await store.removeRunner('r-a')
  off()
  await store.casRoute(P1, 1, { runner: 'r-b', state: 'active' })

  tt.equal(seen.length, 4)
  tt.match(seen[0], { kind: 'runner', runnerId: 'r-a' })
  tt.same(seen[1], { kind: 'route', project: P1, route: r1 })
  tt.same(seen[2], { kind: 'runner', runnerId: 'r-a', runner: drained })
  tt.same(seen[3], { kind: 'runner', runnerId: 'r-a', runner: null })
  await new Promise((r) => setImmediate(r))
  tt.ok(
    warnings.some((w) => w.message === 'a buggy subscriber'),
    'listener errors are reported',
  )
})

t.test('close waits for pending writes, then refuses calls', async (tt) => {
  const store = await openStore(tt, await tempStateDir(tt), new ManualClock())
  const pending = store.casRoute(P1, null, { runner: 'r-a', state: 'active' })
  await store.close()
  tt.equal((await pending).epoch, 1, 'the queued CAS completed before close resolved')
  await tt.rejects(store.getRoute(P1), { code: 'HOPGATE_ERR_STORE_CLOSED' })
  await tt.rejects(store.casRoute(P1, 1, { runner: 'r-a', state: 'active' }), {
    code: 'HOPGATE_ERR_STORE_CLOSED',
  })
  await tt.rejects(store.heartbeat('r-a', {}, 10), { code: 'HOPGATE_ERR_STORE_CLOSED' })
})
