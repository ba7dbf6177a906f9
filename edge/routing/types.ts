// The routing data model: a project's route (runner, fencing epoch, state) and a runner's record
// (lease, capacity, storage, sessions), the id rules both are checked against, and the pure
// record updates every store shares. Storing, placing and resolving live in store.ts,
// embedded-store.ts and router.ts.
import { HopgateError } from '../../shared/errors.js'

export const ROUTE_STATES = ['active', 'moving', 'draining'] as const
export type RouteState = (typeof ROUTE_STATES)[number]

export interface Route {
  readonly project: string
  readonly runner: string
  /** Fencing token: starts at 1 on creation, +1 on every successful compare-and-set. */
  readonly epoch: number
  readonly state: RouteState
  /** Wall-clock Unix ms of the last change; informational, never used for expiry. */
  readonly updatedAt: number
}

/** What a compare-and-set writes; project, epoch and updatedAt are the store's to set. */
export interface RouteUpdate {
  readonly runner: string
  readonly state: RouteState
}

export interface RunnerCapacity {
  readonly maxProjects: number
  readonly cpus: number
  readonly memoryBytes: number
}

export interface RunnerStorage {
  readonly freeBytes: number
  readonly totalBytes: number
}

export interface RunnerRecord {
  readonly runnerId: string
  /**
   * `expiresAt` is in the reading process's Clock domain (Clock.now()), not wall time: a store
   * translates its own notion (embedded: the same Clock; Redis: now + PTTL) so that expiry is
   * always judged by the injected Clock. A lease never outlives the process that granted it.
   */
  readonly lease: { readonly expiresAt: number }
  readonly capacity: RunnerCapacity
  readonly storage: RunnerStorage
  /** Projects the runner reports hosting. */
  readonly projects: number
  /** host:port the edge may dial (direct connector); absent for reverse-only runners. */
  readonly directAddress?: string
  /** Ids of the edges holding a live session to this runner (issue 6 forwards through them). */
  readonly edges: readonly string[]
  /** The runner asked for no new streams (it is shutting down). */
  readonly draining: boolean
  /** Wall-clock Unix ms of the first registration; informational. */
  readonly registeredAt: number
  /** Wall-clock Unix ms of the last registration or heartbeat; informational. */
  readonly lastHeartbeatAt: number
}

/** Registration (hello): everything a runner reports about itself. */
export interface RunnerInfo {
  readonly capacity: RunnerCapacity
  readonly storage: RunnerStorage
  readonly projects?: number
  readonly directAddress?: string
  readonly edges?: readonly string[]
  readonly draining?: boolean
}

/** Heartbeat: whichever reported fields changed; absent fields keep their value. */
export type RunnerPatch = Partial<RunnerInfo>

// Lowercase only, and refused rather than folded: the id is a key in files, Redis and logs, and
// two spellings of one project would be two routes.
const PROJECT_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
// Runner ids come from a certificate's URI SAN (the PKI's rule: HOPGATE_ERR_PKI_ID_INVALID) and
// end up in file keys and Redis keys.
const RUNNER_RE = /^[a-z0-9][a-z0-9-]{0,62}$/

export function isProjectId(value: unknown): value is string {
  return typeof value === 'string' && PROJECT_RE.test(value)
}

export function isRunnerId(value: unknown): value is string {
  return typeof value === 'string' && RUNNER_RE.test(value)
}

export function assertProjectId(value: unknown): asserts value is string {
  if (!isProjectId(value)) {
    throw new HopgateError(
      'HOPGATE_ERR_ROUTE_PROJECT_INVALID',
      `${JSON.stringify(value)} is not a lowercase UUID`,
    )
  }
}

export function assertRunnerId(value: unknown): asserts value is string {
  if (!isRunnerId(value)) {
    throw new HopgateError('HOPGATE_ERR_RUNNER_INVALID', `runner id ${JSON.stringify(value)}`)
  }
}

export function assertRouteState(value: unknown): asserts value is RouteState {
  if (!ROUTE_STATES.includes(value as RouteState)) {
    throw new HopgateError('HOPGATE_ERR_ROUTE_STATE_INVALID', `state ${JSON.stringify(value)}`)
  }
}

function count(v: unknown): boolean {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0
}

/** Refuses numbers a hostile or buggy control message could use to skew placement. */
export function assertRunnerPatch(patch: RunnerPatch): void {
  const bad = (what: string): never => {
    throw new HopgateError('HOPGATE_ERR_RUNNER_INVALID', what)
  }
  const { capacity: c, storage: s } = patch
  if (c && !(count(c.maxProjects) && count(c.cpus) && count(c.memoryBytes))) bad('capacity')
  if (s && !(count(s.freeBytes) && count(s.totalBytes) && s.freeBytes <= s.totalBytes)) {
    bad('storage')
  }
  if (patch.projects !== undefined && !count(patch.projects)) bad('projects')
  if (patch.directAddress !== undefined && typeof patch.directAddress !== 'string') {
    bad('directAddress')
  }
  if (patch.edges !== undefined && !patch.edges.every((e) => typeof e === 'string' && e !== '')) {
    bad('edges')
  }
  if (patch.draining !== undefined && typeof patch.draining !== 'boolean') bad('draining')
}

export function assertLeaseTtl(ms: number): void {
  if (!(Number.isFinite(ms) && ms > 0)) {
    throw new HopgateError('HOPGATE_ERR_RUNNER_INVALID', `lease TTL ${ms} ms`)
  }
}

/**
 * `prev` with the reported fields of `patch`, a lease ending at `expiresAt` (Clock domain) and
 * the heartbeat stamped. Shared by every store so a heartbeat means the same everywhere.
 */
export function applyRunnerPatch(
  prev: RunnerRecord,
  patch: RunnerPatch,
  expiresAt: number,
  wallNow: number,
): RunnerRecord {
  return freezeRunner({
    ...prev,
    lease: { expiresAt },
    lastHeartbeatAt: wallNow,
    ...(patch.capacity && { capacity: { ...patch.capacity } }),
    ...(patch.storage && { storage: { ...patch.storage } }),
    ...(patch.projects !== undefined && { projects: patch.projects }),
    ...(patch.directAddress !== undefined && { directAddress: patch.directAddress }),
    ...(patch.edges !== undefined && { edges: [...patch.edges] }),
    ...(patch.draining !== undefined && { draining: patch.draining }),
  })
}

/** Deep-freezes a record: stores hand out shared references, which must not be edited in place. */
export function freezeRunner(r: RunnerRecord): RunnerRecord {
  Object.freeze(r.lease)
  Object.freeze(r.capacity)
  Object.freeze(r.storage)
  Object.freeze(r.edges)
  return Object.freeze(r)
}

/** Whether two records differ in what routing and forwarding read (worth a change event). */
export function routingFieldsDiffer(a: RunnerRecord, b: RunnerRecord): boolean {
  return (
    a.draining !== b.draining ||
    a.directAddress !== b.directAddress ||
    a.edges.length !== b.edges.length ||
    a.edges.some((e, i) => e !== b.edges[i])
  )
}
