// The on-disk form of the embedded store, `<stateDir>/routes.json`: its schema, strict loading (a
// damaged file is a typed startup error naming the path, never silently replaced) and the atomic,
// durable, 0600 write. It holds no state and does not decide when to write (embedded-store.ts).
import { open, readFile, rename, unlink, mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { z } from 'zod'
import { HopgateError } from '../../shared/errors.js'
import { ROUTE_STATES, isProjectId, isRunnerId, type Route, type RunnerRecord } from './types.js'

export const ROUTES_FILE = 'routes.json'
export const FORMAT = 'hopgate.routes'
export const VERSION = 1

/** A runner as persisted: everything but the lease, which is only meaningful in the process. */
export type StoredRunner = Omit<RunnerRecord, 'lease'>

export interface RoutesSnapshot {
  readonly routes: readonly Route[]
  readonly runners: readonly StoredRunner[]
}

const count = z.int().nonnegative()
const routeSchema = z.object({
  project: z.string().refine(isProjectId, 'not a lowercase UUID'),
  runner: z.string().refine(isRunnerId, 'not a runner id'),
  epoch: z.int().positive(),
  state: z.enum(ROUTE_STATES),
  updatedAt: z.number(),
})
const runnerSchema = z.object({
  runnerId: z.string().refine(isRunnerId, 'not a runner id'),
  capacity: z.object({ maxProjects: count, cpus: count, memoryBytes: count }),
  storage: z.object({ freeBytes: count, totalBytes: count }),
  projects: count,
  directAddress: z.string().optional(),
  edges: z.array(z.string()),
  draining: z.boolean(),
  registeredAt: z.number(),
  lastHeartbeatAt: z.number(),
})
const fileSchema = z.object({
  format: z.literal(FORMAT),
  version: z.literal(VERSION),
  routes: z.array(routeSchema),
  runners: z.array(runnerSchema),
})

function corrupt(path: string, why: string, cause?: unknown): HopgateError {
  return new HopgateError('HOPGATE_ERR_STORE_CORRUPT', `${path}: ${why}`, { cause })
}

/** Reads the snapshot; a missing file is an empty store, anything unreadable is an error. */
export async function loadRoutesFile(stateDir: string): Promise<RoutesSnapshot> {
  const path = join(stateDir, ROUTES_FILE)
  // A temp file left by a crash mid-write never replaced routes.json, so it holds nothing durable.
  await unlink(`${path}.tmp`).catch(() => undefined)
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { routes: [], runners: [] }
    throw new HopgateError('HOPGATE_ERR_STORE_IO', `reading ${path}`, { cause: err })
  }
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (err) {
    throw corrupt(path, 'not valid JSON', err)
  }
  const parsed = fileSchema.safeParse(json)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    const where = issue ? `${issue.path.join('.') || '(root)'}: ${issue.message}` : 'schema'
    throw corrupt(path, where, parsed.error)
  }
  const { routes, runners } = parsed.data
  const dup = (ids: string[]): string | undefined => ids.find((id, i) => ids.indexOf(id) !== i)
  const dupRoute = dup(routes.map((r) => r.project))
  if (dupRoute) throw corrupt(path, `project ${dupRoute} listed twice`)
  const dupRunner = dup(runners.map((r) => r.runnerId))
  if (dupRunner) throw corrupt(path, `runner ${dupRunner} listed twice`)
  return { routes, runners }
}

export function serializeSnapshot(snapshot: RoutesSnapshot): string {
  const byKey =
    <T>(key: (v: T) => string) =>
    (a: T, b: T) =>
      key(a) < key(b) ? -1 : 1
  const routes = [...snapshot.routes].sort(byKey((r) => r.project))
  const runners = [...snapshot.runners].sort(byKey((r) => r.runnerId))
  return `${JSON.stringify({ format: FORMAT, version: VERSION, routes, runners }, null, 1)}\n`
}

/**
 * Replaces routes.json so that a crash at any point leaves either the old or the new file whole:
 * write a temp file, fsync it, rename over, then fsync the directory so the rename itself is
 * durable. The temp file is chmod'ed because `open` keeps the mode of a leftover it reuses.
 */
export async function writeRoutesFile(stateDir: string, snapshot: RoutesSnapshot): Promise<void> {
  const path = join(stateDir, ROUTES_FILE)
  const tmp = `${path}.tmp`
  try {
    await mkdir(stateDir, { recursive: true, mode: 0o700 })
    const fh = await open(tmp, 'w', 0o600)
    try {
      await fh.chmod(0o600)
      await fh.writeFile(serializeSnapshot(snapshot), 'utf8')
      await fh.sync()
    } finally {
      await fh.close()
    }
    await rename(tmp, path)
    const dir = await open(stateDir, 'r')
    try {
      await dir.sync()
    } finally {
      await dir.close()
    }
  } catch (err) {
    throw new HopgateError('HOPGATE_ERR_STORE_IO', `writing ${path}`, { cause: err })
  }
}
