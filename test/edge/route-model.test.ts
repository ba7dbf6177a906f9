// Model-based test: random sequences of CAS (single and concurrent), runner registration,
// heartbeats, clock advances, resolves and restarts run against the embedded store + Router and
// against a few Maps; after every step both must agree on every route, epoch and runner's health.
import t from 'tap'
import fc from 'fast-check'
import { mkdtemp, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { ManualClock } from '../../shared/clock.js'
import { isHopgateError } from '../../shared/errors.js'
import { EmbeddedStore } from '../../edge/routing/embedded-store.js'
import { Router } from '../../edge/routing/router.js'
import { RouteConflictError } from '../../edge/routing/store.js'
import type { Route, RouteState } from '../../edge/routing/types.js'
import { project, runnerInfo, tempStateDir } from './routing-helpers.js'

const PROJECTS = [project(1), project(2), project(3)]
const RUNNERS = ['r-a', 'r-b', 'r-c']
const STATES: RouteState[] = ['active', 'moving', 'draining']

type Expect = 'null' | 'current' | 'stale' | 'ahead' | number
const expectArb: fc.Arbitrary<Expect> = fc.oneof(
  fc.constantFrom<Expect>('null', 'current', 'current', 'stale', 'ahead'),
  fc.integer({ min: 1, max: 4 }),
)
const pick = <T>(xs: T[]) => fc.integer({ min: 0, max: xs.length - 1 }).map((i) => xs[i]!)

const opArb = fc.oneof(
  fc.record({
    op: fc.constant('cas' as const),
    p: pick(PROJECTS),
    expect: expectArb,
    runner: pick(RUNNERS),
    state: pick(STATES),
  }),
  fc.record({
    op: fc.constant('race' as const),
    p: pick(PROJECTS),
    expect: expectArb,
    k: fc.integer({ min: 2, max: 6 }),
  }),
  fc.record({
    op: fc.constant('register' as const),
    r: pick(RUNNERS),
    ttl: fc.integer({ min: 1, max: 3000 }),
  }),
  fc.record({
    op: fc.constant('heartbeat' as const),
    r: pick(RUNNERS),
    ttl: fc.integer({ min: 1, max: 3000 }),
    draining: fc.option(fc.boolean(), { nil: undefined }),
  }),
  fc.record({ op: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 2000 }) }),
  fc.record({ op: fc.constant('resolve' as const), p: pick(PROJECTS) }),
  fc.record({ op: fc.constant('restart' as const) }),
)
type Op = typeof opArb extends fc.Arbitrary<infer O> ? O : never

interface Model {
  now: number
  routes: Map<string, { runner: string; epoch: number; state: RouteState }>
  runners: Map<string, { expiresAt: number; draining: boolean }>
}

const healthy = (m: Model, r: string) => {
  const x = m.runners.get(r)
  return !!x && !x.draining && m.now < x.expiresAt
}

function expectedEpoch(m: Model, p: string, e: Expect): number | null {
  const cur = m.routes.get(p)?.epoch
  if (e === 'null') return null
  if (e === 'current') return cur ?? null
  if (e === 'stale') return (cur ?? 1) - 1
  if (e === 'ahead') return (cur ?? 0) + 1
  return e
}

/** Applies a CAS to the model; returns the expected epoch on success, undefined on a conflict. */
function modelCas(m: Model, p: string, expected: number | null): number | undefined {
  const cur = m.routes.get(p)
  const ok = expected === null ? !cur : cur?.epoch === expected
  return ok ? (cur?.epoch ?? 0) + 1 : undefined
}

t.test('store + router agree with a reference model', async (tt) => {
  const root = await tempStateDir(tt)
  let runs = 0
  await fc.assert(
    fc.asyncProperty(fc.array(opArb, { maxLength: 40 }), async (ops: Op[]) => {
      const dir = await mkdtemp(join(root, `run-${runs++}-`))
      const clock = new ManualClock()
      let store = await EmbeddedStore.open({ stateDir: dir, clock, flushIntervalMs: 0 })
      let router = new Router({ store, clock })
      const m: Model = { now: 0, routes: new Map(), runners: new Map() }
      try {
        for (const op of ops) {
          await step(op)
          await compare()
        }
      } finally {
        await store.close()
        await rm(dir, { recursive: true, force: true })
      }

      async function step(op: Op): Promise<void> {
        switch (op.op) {
          case 'cas': {
            const exp = expectedEpoch(m, op.p, op.expect)
            const want = modelCas(m, op.p, exp)
            const got = await store
              .casRoute(op.p, exp, { runner: op.runner, state: op.state })
              .catch((e) => e)
            if (want === undefined) {
              if (!(got instanceof RouteConflictError))
                throw new Error(`expected conflict, got ${String(got)}`)
              const cur = m.routes.get(op.p)
              if ((got.current?.epoch ?? null) !== (cur?.epoch ?? null))
                throw new Error('conflict carries a wrong route')
              return
            }
            if ((got as Route).epoch !== want)
              throw new Error(`epoch ${String((got as Route).epoch)} != ${want}`)
            m.routes.set(op.p, { runner: op.runner, epoch: want, state: op.state })
            return
          }
          case 'race': {
            const exp = expectedEpoch(m, op.p, op.expect)
            const want = modelCas(m, op.p, exp)
            const results = await Promise.allSettled(
              RUNNERS.concat(RUNNERS)
                .slice(0, op.k)
                .map((runner) => store.casRoute(op.p, exp, { runner, state: 'active' })),
            )
            const won = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []))
            if (won.length !== (want === undefined ? 0 : 1))
              throw new Error(`${won.length} winners`)
            if (won[0])
              m.routes.set(op.p, { runner: won[0].runner, epoch: won[0].epoch, state: 'active' })
            return
          }
          case 'register':
            await store.putRunner(
              op.r,
              runnerInfo({ capacity: { maxProjects: 100, cpus: 1, memoryBytes: 1 } }),
              op.ttl,
            )
            m.runners.set(op.r, { expiresAt: m.now + op.ttl, draining: false })
            return
          case 'heartbeat': {
            const got = await store
              .heartbeat(op.r, { draining: op.draining }, op.ttl)
              .catch((e) => e)
            const prev = m.runners.get(op.r)
            if (!prev) {
              if (!isHopgateError(got, 'HOPGATE_ERR_RUNNER_UNKNOWN'))
                throw new Error('heartbeat of an unknown runner')
              return
            }
            m.runners.set(op.r, {
              expiresAt: m.now + op.ttl,
              draining: op.draining ?? prev.draining,
            })
            return
          }
          case 'advance':
            clock.advance(op.ms)
            m.now += op.ms
            return
          case 'restart':
            await store.close()
            store = await EmbeddedStore.open({ stateDir: dir, clock, flushIntervalMs: 0 })
            router = new Router({ store, clock })
            for (const [id, r] of m.runners) m.runners.set(id, { ...r, expiresAt: m.now })
            return
          case 'resolve':
            return resolve(op.p)
        }
      }

      async function resolve(p: string): Promise<void> {
        const got: unknown = await router.resolve(p).catch((e) => e)
        const cur = m.routes.get(p)
        let code: string | undefined
        if (cur?.state === 'moving') code = 'HOPGATE_ERR_ROUTE_MOVING'
        else if (cur && !healthy(m, cur.runner)) code = 'HOPGATE_ERR_RUNNER_UNAVAILABLE'
        else if (!cur) {
          // Equal disks and free slots: fewest routes wins, then runner id.
          const load = (r: string) => [...m.routes.values()].filter((x) => x.runner === r).length
          const best = RUNNERS.filter((r) => healthy(m, r)).sort(
            (a, b) => load(a) - load(b) || (a < b ? -1 : 1),
          )[0]
          if (!best) code = 'HOPGATE_ERR_RUNNER_NONE_AVAILABLE'
          else m.routes.set(p, { runner: best, epoch: 1, state: 'active' })
        }
        if (code) {
          if (!isHopgateError(got) || got.code !== code)
            throw new Error(`resolve: want ${code}, got ${String(got)}`)
          return
        }
        const want = m.routes.get(p)!
        const r = got as Route
        if (r.runner !== want.runner || r.epoch !== want.epoch)
          throw new Error(`resolve: ${JSON.stringify(r)}`)
      }

      async function compare(): Promise<void> {
        const routes = await store.listRoutes()
        const want = [...m.routes.entries()].sort(([a], [b]) => (a < b ? -1 : 1))
        const same =
          routes.length === want.length &&
          routes.every((r, i) => {
            const [p, w] = want[i]!
            return (
              r.project === p && r.runner === w.runner && r.epoch === w.epoch && r.state === w.state
            )
          })
        if (!same)
          throw new Error(`routes diverged: ${JSON.stringify(routes)} vs ${JSON.stringify(want)}`)
        for (const r of await store.listRunners()) {
          if (router.isHealthy(r) !== healthy(m, r.runnerId))
            throw new Error(`health of ${r.runnerId} diverged`)
        }
        if ((await store.listRunners()).length !== m.runners.size)
          throw new Error('runner sets diverged')
      }
    }),
    { numRuns: 60 },
  )
  tt.pass('store and model agreed on every step')
})
