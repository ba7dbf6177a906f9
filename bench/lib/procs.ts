// Child processes for the bench: forking a tsx child with --expose-gc, request/reply over IPC
// with a deadline, gc'd memory snapshots, and the guarantee that no child outlives the bench.
import { fork, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { Pki } from './links.js'
import type { PathName } from './muxes.js'

export type Request =
  | { id: number; cmd: 'init'; path: PathName; pki: Pki }
  | { id: number; cmd: 'mem' }
  | { id: number; cmd: 'dial'; path: PathName; pki: Pki; port: number }
  | { id: number; cmd: 'fill'; n: number }
export type Command = Request extends infer R
  ? R extends { id: number }
    ? Omit<R, 'id'>
    : never
  : never

export interface Mem {
  heapUsed: number
  /** Memory of Buffers and other objects outside the V8 heap (includes arrayBuffers). */
  external: number
  rss: number
}
export interface Reply {
  id: number
  error?: string
  port?: number
  mem?: Mem
  streams?: number
}

/** Heap after full collections; several passes so weak/finalizer-held garbage is gone too. */
export function memSnapshot(): Mem {
  const gc = (globalThis as { gc?: () => void }).gc
  if (!gc) throw new Error('child started without --expose-gc')
  for (let i = 0; i < 4; i++) gc()
  const m = process.memoryUsage()
  return { heapUsed: m.heapUsed, external: m.external, rss: m.rss }
}

/** Run from TypeScript sources (tsx) or from the compiled package (plain node). */
function childLoader(): string[] {
  return import.meta.url.endsWith('.ts') ? ['--import', 'tsx'] : []
}

const live = new Set<ChildProcess>()
function killAll(): void {
  for (const c of live) c.kill('SIGKILL')
  live.clear()
}
process.on('exit', killAll)
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    killAll()
    process.exit(130)
  })
}

/** Defaults to the bench:yamux server/idle-client protocol; other benches pass their own types. */
export class Child<C extends { cmd: string } = Command, R extends Reply = Reply> {
  private nextId = 1
  private pending = new Map<number, (r: R) => void>()
  private exited: string | null = null

  private constructor(private proc: ChildProcess) {
    proc.on('message', (m) => {
      const r = m as R
      this.pending.get(r.id)?.(r)
      this.pending.delete(r.id)
    })
    proc.on('exit', (code, sig) => {
      live.delete(proc)
      this.exited = `child exited (${sig ?? code})`
      for (const cb of this.pending.values()) cb({ id: 0, error: this.exited } as R)
      this.pending.clear()
    })
  }

  /** `file` is a module in this directory, e.g. 'server.ts', or a file URL of another entry. */
  static spawn<C extends { cmd: string } = Command, R extends Reply = Reply>(
    file: string | URL,
  ): Child<C, R> {
    let script = fileURLToPath(typeof file === 'string' ? new URL(file, import.meta.url) : file)
    // Entries are named by their source file; the compiled package holds the .js next to us.
    if (childLoader().length === 0) script = script.replace(/\.ts$/, '.js')
    // Child stdout goes to our stderr: with --json our stdout must be exactly one line.
    const prof = process.env.HOPGATE_BENCH_CPU_PROF
    const proc = fork(script, [], {
      execArgv: [
        ...childLoader(),
        '--expose-gc',
        ...(prof ? ['--cpu-prof', `--cpu-prof-dir=${prof}`] : []),
        // e.g. "--trace-gc": flags NODE_OPTIONS refuses, for looking inside one bench process.
        ...(process.env.HOPGATE_BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean),
      ],
      stdio: ['ignore', 2, 'inherit', 'ipc'],
    })
    live.add(proc)
    return new Child<C, R>(proc)
  }

  /** The child's pid, for reading its (and its subtree's) memory from /proc. */
  get pid(): number | undefined {
    return this.proc.pid
  }

  request(cmd: C, timeoutMs = 30_000): Promise<R> {
    if (this.exited) return Promise.reject(new Error(this.exited))
    const id = this.nextId++
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id)
        reject(new Error(`child did not answer ${cmd.cmd} in ${timeoutMs} ms`))
      }, timeoutMs)
      this.pending.set(id, (r) => {
        clearTimeout(timer)
        if (r.error) reject(new Error(r.error))
        else resolve(r)
      })
      this.proc.send({ ...cmd, id })
    })
  }

  /**
   * Lets the child exit on its own (IPC closed: its exit handlers remove its temp state), then
   * SIGKILL after `graceMs` if it has not.
   */
  async stop(graceMs = 3000): Promise<void> {
    if (this.exited || !this.proc.connected) return this.kill()
    const gone = new Promise<void>((resolve) => this.proc.once('exit', () => resolve()))
    this.proc.disconnect()
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), graceMs)
    await gone
    clearTimeout(timer)
    live.delete(this.proc)
  }

  kill(): void {
    live.delete(this.proc)
    // A profiled child must exit on its own to write its profile: it exits when IPC closes.
    if (process.env.HOPGATE_BENCH_CPU_PROF && this.proc.connected) {
      const proc = this.proc
      proc.disconnect()
      setTimeout(() => proc.kill('SIGKILL'), 3000).unref()
      return
    }
    // SIGTERM first: middle processes exit at once through their exit handlers, which remove
    // their temp state dirs (SIGKILL left one per process in the temp dir); SIGKILL if not.
    const proc = this.proc
    if (proc.exitCode !== null || proc.signalCode !== null) return
    proc.kill('SIGTERM')
    setTimeout(() => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL')
    }, 3000).unref()
  }
}
