// Files of the PKI in the state directory: private directories, atomic writes, cross-process
// locks for read-modify-write JSON, and the wall clock certs need. Knows no PKI policy and no
// layout beyond the directory names; pki.ts, tokens.ts, revocation.ts and enroll.ts own theirs.
import { randomBytes } from 'node:crypto'
import { chmod, link, mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { systemClock, type Clock } from '../shared/clock.js'
import { HopgateError } from '../shared/errors.js'

/** The edge's PKI directory inside a state dir. */
export const PKI_DIR = 'pki'
/** The agent's identity directory inside a state dir (distinct, so one dir can hold both). */
export const AGENT_DIR = 'agent'

/**
 * Certificates and tokens expire in wall time, but shared/clock's systemClock is monotonic. This
 * Clock's now() is epoch milliseconds; tests pass a ManualClock advanced to an epoch instead.
 */
export const wallClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => systemClock.setTimeout(fn, ms),
  clearTimeout: (handle) => systemClock.clearTimeout(handle),
}

/** Epoch milliseconds from `clock`; refuses the monotonic systemClock, which would read as 1970. */
export function wallNow(clock: Clock): number {
  if (clock === systemClock) {
    throw new TypeError('certs need wall time: pass wallClock or a ManualClock, not systemClock')
  }
  return clock.now()
}

const ID_RE = /^[a-z0-9][a-z0-9-]{0,62}$/

/** Runner and edge ids end up in URIs, file names and logs: one strict form, never normalised. */
export function assertId(id: unknown): asserts id is string {
  if (typeof id !== 'string' || !ID_RE.test(id)) {
    throw new HopgateError('HOPGATE_ERR_PKI_ID_INVALID')
  }
}

export function isValidId(id: unknown): id is string {
  return typeof id === 'string' && ID_RE.test(id)
}

/** Creates `dir` (and parents) and makes `dir` itself 0700, also when it already existed. */
export async function ensurePrivateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 })
  await chmod(dir, 0o700)
}

export interface WriteOptions {
  /** File mode; 0600 by default because most of what lives here is secret or security state. */
  mode?: number
  /** When false, an existing file is never replaced (the write fails with EEXIST). */
  overwrite?: boolean
}

/**
 * Writes via a temp file, fsync and rename (or link, which fails instead of replacing), so a
 * crash leaves either the old or the new content, never a torn file.
 */
export async function writeFileAtomic(
  path: string,
  data: string | Buffer,
  opts: WriteOptions = {},
): Promise<void> {
  const mode = opts.mode ?? 0o600
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`
  const fh = await open(tmp, 'wx', mode)
  try {
    await fh.writeFile(data)
    await fh.chmod(mode)
    await fh.sync()
  } finally {
    await fh.close()
  }
  try {
    if (opts.overwrite === false) await link(tmp, path)
    else await rename(tmp, path)
  } finally {
    await unlink(tmp).catch(() => undefined)
  }
  await syncDir(dirname(path))
}

async function syncDir(dir: string): Promise<void> {
  // Makes the rename durable; some filesystems refuse fsync on a directory, which is harmless.
  const fh = await open(dir, 'r').catch(() => undefined)
  if (!fh) return
  try {
    await fh.sync()
  } catch {
    // ignored: see above
  } finally {
    await fh.close()
  }
}

export async function fileExists(path: string): Promise<boolean> {
  try {
    await stat(path)
    return true
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw err
  }
}

/** Reads a JSON state file; `undefined` when absent, HOPGATE_ERR_PKI_STATE_INVALID when garbled. */
export async function readJsonFile(path: string): Promise<unknown> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new HopgateError('HOPGATE_ERR_PKI_STATE_INVALID', `cannot read ${path}`, { cause: err })
  }
  try {
    return JSON.parse(text) as unknown
  } catch (err) {
    throw new HopgateError('HOPGATE_ERR_PKI_STATE_INVALID', `${path} is not JSON`, { cause: err })
  }
}

const LOCK_WAIT_MS = 5_000
const LOCK_STALE_MS = 30_000
const LOCK_POLL_MS = 15
const inProcess = new Map<string, Promise<unknown>>()

/**
 * Runs `fn` holding `<path>.lock`. The CLI (token create, runner revoke) and a running edge write
 * the same files; without the lock a lost update could, say, forget that a token was used.
 */
export async function withFileLock<T>(path: string, fn: () => Promise<T>): Promise<T> {
  // Callers in one process queue on a promise instead of polling the lock file.
  const prev = inProcess.get(path) ?? Promise.resolve()
  const run = prev.then(
    () => holdLock(path, fn),
    () => holdLock(path, fn),
  )
  const tail = run.catch(() => undefined)
  inProcess.set(path, tail)
  try {
    return await run
  } finally {
    if (inProcess.get(path) === tail) inProcess.delete(path)
  }
}

async function holdLock<T>(path: string, fn: () => Promise<T>): Promise<T> {
  const lockPath = `${path}.lock`
  const deadline = Date.now() + LOCK_WAIT_MS
  for (;;) {
    try {
      const fh = await open(lockPath, 'wx', 0o600)
      await fh.writeFile(String(process.pid))
      await fh.close()
      break
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    }
    // A holder that crashed leaves its lock behind; past LOCK_STALE_MS nobody is still writing.
    const st = await stat(lockPath).catch(() => undefined)
    if (st && Date.now() - st.mtimeMs > LOCK_STALE_MS) {
      await unlink(lockPath).catch(() => undefined)
      continue
    }
    if (Date.now() > deadline) throw new HopgateError('HOPGATE_ERR_PKI_STATE_LOCKED', lockPath)
    await sleep(LOCK_POLL_MS)
  }
  try {
    return await fn()
  } finally {
    await unlink(lockPath).catch(() => undefined)
  }
}

export function pkiPath(stateDir: string, name: string): string {
  return join(stateDir, PKI_DIR, name)
}

export function agentPath(stateDir: string, name: string): string {
  return join(stateDir, AGENT_DIR, name)
}
