// The RouteStore contract (edge/routing/store.ts) as one suite, run against every implementation:
// route-store.test.ts runs it on the embedded store, redis-store.test.ts on Redis. Leases are
// compared with a slack because Redis reports them as PTTL, which real time keeps shrinking.
import { ManualClock } from '../../shared/clock.js'
import { isHopgateError } from '../../shared/errors.js'
import { RouteConflictError, type RouteStore, type StoreChange } from '../../edge/routing/store.js'
import type { RunnerRecord } from '../../edge/routing/types.js'
import { project, runnerInfo, type TapTest as Test } from './routing-helpers.js'

export interface ContractTarget {
  name: string
  /** A fresh, empty store judged by `clock`, whose own edge id is `edge-1`; closed in teardown. */
  open(tt: Test, clock: ManualClock, wallClock: () => number): Promise<RouteStore>
  /** How far a reported lease may fall short of now + TTL (0 for an exact store), ms. */
  leaseSlackMs: number
}

const P1 = project(1)

function withoutLease(r: RunnerRecord | undefined): unknown {
  if (!r) return r
  const { lease: _lease, ...rest } = r
  return rest
}

export function storeContract(t: Test, target: ContractTarget): void {
  const open = (tt: Test, clock = new ManualClock(), wall: () => number = Date.now) =>
    target.open(tt, clock, wall)
  const leaseNear = (tt: Test, got: number, want: number, what: string): void => {
    tt.ok(
      got <= want && got >= want - target.leaseSlackMs,
      `${what}: lease ends at ${got}, want ${want} (-${target.leaseSlackMs})`,
    )
  }

  t.test(`${target.name}: create, then every CAS bumps the epoch by exactly 1`, async (tt) => {
    const store = await open(tt)
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
    tt.ok(Object.isFrozen(r3), 'routes handed out are frozen')
  })

  t.test(
    `${target.name}: a stale expected epoch loses and carries the current route`,
    async (tt) => {
      const store = await open(tt)
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
      const noRoute = await store
        .casRoute(P2, 1, { runner: 'r-c', state: 'active' })
        .catch((e) => e)
      tt.ok(isHopgateError(noRoute, 'HOPGATE_ERR_ROUTE_CONFLICT'))
      tt.equal((noRoute as RouteConflictError).current, undefined, 'no route to compare with')
      tt.same(await store.getRoute(P1), cur, 'losers changed nothing')
      tt.equal(await store.getRoute(P2), undefined)
    },
  )

  t.test(`${target.name}: 50 concurrent CAS, same expected epoch: one wins`, async (tt) => {
    const store = await open(tt)
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
    tt.ok(
      lost.every((l) => (l.reason as RouteConflictError).current?.epoch === 2),
      'every loser carries the winning route',
    )
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

  t.test(`${target.name}: project and runner ids are refused, never normalised`, async (tt) => {
    const store = await open(tt)
    const hexy = '3f2a9c4e-7b1d-4e8a-9f0c-2d4b6a8e1c3f'
    const bad = [
      hexy.toUpperCase(),
      `{${hexy}}`,
      hexy.replaceAll('-', ''),
      ` ${hexy}`,
      `${hexy}\n`,
      'not-a-uuid',
      '',
    ]
    for (const id of bad) {
      const e = await store.casRoute(id, null, { runner: 'r-a', state: 'active' }).catch((x) => x)
      tt.ok(isHopgateError(e, 'HOPGATE_ERR_ROUTE_PROJECT_INVALID'), `cas refuses ${id}`)
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

  t.test(`${target.name}: hostile runner numbers and bad lease TTLs are refused`, async (tt) => {
    const store = await open(tt)
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

  t.test(`${target.name}: leases granted, renewed from now, judged by the Clock`, async (tt) => {
    const clock = new ManualClock()
    const store = await open(tt, clock, () => 1_000)
    await tt.rejects(store.heartbeat('r-a', {}, 10_000), { code: 'HOPGATE_ERR_RUNNER_UNKNOWN' })

    const info = runnerInfo({ directAddress: '10.0.0.1:7443' })
    const reg = await store.putRunner('r-a', info, 10_000)
    tt.match(reg, { runnerId: 'r-a', projects: 0, edges: [], draining: false })
    leaseNear(tt, reg.lease.expiresAt, 10_000, 'registration')
    tt.equal(reg.registeredAt, 1_000)
    clock.advance(900)
    const hb = await store.heartbeat('r-a', { projects: 3, edges: ['edge-1'] }, 10_000)
    leaseNear(tt, hb.lease.expiresAt, 10_900, 'renewed from now, not from the old expiry')
    tt.equal(hb.projects, 3)
    tt.same(hb.edges, ['edge-1'])
    tt.equal(hb.directAddress, '10.0.0.1:7443', 'absent fields keep their value')
    tt.same(withoutLease(await store.getRunner('r-a')), withoutLease(hb))
    tt.same((await store.listRunners()).map(withoutLease), [withoutLease(hb)])

    // Re-registration (a new session) replaces reported fields but keeps registeredAt.
    const again = await store.putRunner('r-a', runnerInfo(), 5_000)
    tt.equal(again.directAddress, undefined)
    tt.equal(again.projects, 0)
    leaseNear(tt, again.lease.expiresAt, 5_900, 'a new registration grants its own TTL')
    tt.equal(again.registeredAt, 1_000)
    tt.ok(Object.isFrozen(again) && Object.isFrozen(again.lease), 'records are frozen')

    tt.equal(await store.removeRunner('r-a'), true)
    tt.equal(await store.removeRunner('r-a'), false)
    tt.equal(await store.getRunner('r-a'), undefined)
    tt.same(await store.listRunners(), [])
  })

  t.test(`${target.name}: change events in order; unsubscribe stops them`, async (tt) => {
    const store = await open(tt)
    const seen: StoreChange[] = []
    const off = store.onChange((c) => seen.push(c))
    store.onChange(() => {
      throw new Error('a buggy subscriber')
    })
    const warnings: Error[] = []
    const onWarning = (w: Error): number => warnings.push(w)
    process.on('warning', onWarning)
    tt.teardown(() => process.off('warning', onWarning))

    await store.putRunner('r-a', runnerInfo(), 10_000)
    const r1 = await store.casRoute(P1, null, { runner: 'r-a', state: 'active' })
    await store.casRoute(P1, 5, { runner: 'r-a', state: 'active' }).catch(() => undefined)
    await store.heartbeat('r-a', { projects: 1 }, 10_000) // stats only: no event
    const drained = await store.heartbeat('r-a', { draining: true }, 10_000)
    await store.removeRunner('r-a')
    off()
    await store.casRoute(P1, 1, { runner: 'r-b', state: 'active' })

    tt.equal(seen.length, 4)
    tt.match(seen[0], { kind: 'runner', runnerId: 'r-a' })
    tt.same(seen[1], { kind: 'route', project: P1, route: r1 })
    tt.match(seen[2], { kind: 'runner', runnerId: 'r-a', runner: { draining: true } })
    tt.same(withoutLease((seen[2] as { runner: RunnerRecord }).runner), withoutLease(drained))
    tt.same(seen[3], { kind: 'runner', runnerId: 'r-a', runner: null })
    await new Promise((r) => setImmediate(r))
    tt.ok(
      warnings.some((w) => w.message === 'a buggy subscriber'),
      'listener errors are reported',
    )
  })

  t.test(`${target.name}: close waits for pending writes, then refuses calls`, async (tt) => {
    const store = await open(tt)
    const pending = store.casRoute(P1, null, { runner: 'r-a', state: 'active' })
    await store.close()
    tt.equal((await pending).epoch, 1, 'the pending CAS completed before close resolved')
    await tt.rejects(store.getRoute(P1), { code: 'HOPGATE_ERR_STORE_CLOSED' })
    await tt.rejects(store.casRoute(P1, 1, { runner: 'r-a', state: 'active' }), {
      code: 'HOPGATE_ERR_STORE_CLOSED',
    })
    await tt.rejects(store.heartbeat('r-a', {}, 10), { code: 'HOPGATE_ERR_STORE_CLOSED' })
  })
}
