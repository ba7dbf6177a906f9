// The hopgate CLI as a real process from the source tree (`node --import tsx shared/cli/main.ts`),
// for the tests of its commands: spawned quiet (log level warn unless HOPGATE_TEST_LOG_LEVEL says
// otherwise), killed with SIGKILL when the test file ends if still running, its output collected
// as text. Which HOPGATE_* variables a test clears or sets is the test's own `env`.
import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

export const ROOT = fileURLToPath(new URL('../..', import.meta.url))

const children = new Set<ChildProcess>()
t.teardown(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
})

export interface HopgateOptions {
  env?: NodeJS.ProcessEnv
  /** A pipe on stdin (else /dev/null). */
  stdin?: boolean
}

/** Spawns `hopgate <args>` with stdout and stderr piped. */
export function spawnHopgate(args: string[], opts: HopgateOptions = {}): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'shared/cli/main.ts', ...args], {
    cwd: ROOT,
    env: {
      ...process.env,
      HOPGATE_LOG_LEVEL: process.env.HOPGATE_TEST_LOG_LEVEL ?? 'warn',
      ...opts.env,
    },
    stdio: [opts.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
  })
  children.add(child)
  child.once('exit', () => children.delete(child))
  return child
}

export interface CliResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

/** Everything `child` writes, and how it ended. */
export function collect(child: ChildProcess): Promise<CliResult> {
  let stdout = ''
  let stderr = ''
  child.stdout?.on('data', (c: Buffer) => (stdout += c.toString()))
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()))
  return new Promise((resolve, reject) => {
    child.once('error', reject)
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }))
  })
}

/** Runs `hopgate <args>` to its end; `input`, when given, is all of its stdin. */
export function runHopgate(
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; input?: string } = {},
): Promise<CliResult> {
  const child = spawnHopgate(args, { ...opts, stdin: opts.input !== undefined })
  const done = collect(child)
  if (opts.input !== undefined) child.stdin!.end(opts.input)
  return done
}

export interface Daemon {
  child: ChildProcess
  /** The first stdout line (the `--json` ready line), parsed. */
  ready: any
  stderr(): string
  exit: Promise<[number | null, NodeJS.Signals | null]>
}

/** Starts a long-running command (edge, agent); rejects with its stderr if it exits before a line. */
export async function startHopgate(args: string[], opts: HopgateOptions = {}): Promise<Daemon> {
  const child = spawnHopgate(args, opts)
  let stderr = ''
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()))
  const exit = new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
    child.once('exit', (code, signal) => resolve([code, signal])),
  )
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve)
    void exit.then(([code]) => reject(new Error(`hopgate exited ${code} before ready: ${stderr}`)))
  })
  return { child, ready: JSON.parse(line), stderr: () => stderr, exit }
}
