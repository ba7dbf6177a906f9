// `hopgate bench`: runs bench/tunnel.ts (the end-to-end tunnel benchmark) from the source
// checkout with tsx, passing the flags through and its stdout/stderr untouched: progress on
// stderr, the table (or with --json one JSON line) on stdout. The bench forks its own edge, agent,
// target and comparison relays, so it needs the repository (bench/ and the tsx dev dependency).
import { spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Command } from 'commander'

/** bench/tunnel.ts in the hopgate checkout above this file (run from source or from dist/). */
export function benchScript(file = 'tunnel.ts'): string | null {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (;;) {
    const script = join(dir, 'bench', file)
    if (existsSync(script)) {
      try {
        const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
          name?: unknown
        }
        if (pkg.name === 'hopgate') return script
      } catch {
        // not the package root: keep walking up
      }
    }
    const parent = dirname(dir)
    if (parent === dir) return null
    dir = parent
  }
}

interface BenchOpts {
  json?: boolean
  quick?: boolean
  bytes?: string
  paths?: string
  rounds?: string
  edge?: string
  http?: boolean
  connections?: string
  durationMs?: string
}

export function registerBench(program: Command): void {
  program
    .command('bench')
    .description(
      'measure the tunnel end to end (own edge, agent and target) next to raw TCP, a Node proxy ' +
        'hop, a Node TLS 2-hop relay and ssh -R',
    )
    .option('--json', 'print one JSON line {"paths":[...],"env":{...},"params":{...}}')
    .option('--quick', 'small sizes and counts (seconds, not minutes)')
    .option('--bytes <size>', 'bulk transfer size, e.g. 256MiB')
    .option('--paths <list>', 'comma-separated: hopgate,raw-tcp,node-proxy,tls-2hop,ssh-R')
    .option('--rounds <n>', 'rounds (medians reported)')
    .option('--edge <host:port>', "measure an existing edge's TCP ingress (hopgate path only)")
    // HTTP ingress (issue 4): bench/http.ts instead of the tunnel benchmark.
    .option(
      '--http',
      'HTTP req/s and p99 through the edge vs the target direct vs a plain Node reverse proxy',
    )
    .option('--connections <n>', 'with --http: concurrent keep-alive connections (default 32)')
    .option('--duration-ms <ms>', 'with --http: measuring time per path and round (default 5000)')
    .action(async (opts: BenchOpts) => {
      const file = opts.http ? 'http.ts' : 'tunnel.ts'
      const script = benchScript(file)
      if (!script) {
        process.stderr.write(`hopgate bench: bench/${file} not found (run from the checkout)\n`)
        process.exitCode = 2
        return
      }
      const args: string[] = []
      if (opts.json) args.push('--json')
      if (opts.quick) args.push('--quick')
      const passed = opts.http
        ? (['rounds', 'connections', 'durationMs'] as const)
        : (['bytes', 'paths', 'rounds', 'edge'] as const)
      for (const k of passed) {
        const v = opts[k]
        if (v !== undefined) args.push(`--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`, v)
      }
      const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
        cwd: dirname(dirname(script)),
        stdio: 'inherit',
      })
      const forward = (sig: NodeJS.Signals) => child.kill(sig)
      process.once('SIGINT', forward)
      process.once('SIGTERM', forward)
      const code = await new Promise<number>((resolve) =>
        child.once('exit', (c, sig) => resolve(c ?? (sig ? 130 : 1))),
      )
      process.off('SIGINT', forward)
      process.off('SIGTERM', forward)
      process.exitCode = code
    })
}
