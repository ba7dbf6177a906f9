// `hopgate bench`: runs the end-to-end tunnel benchmark (bench/tunnel) as a child process, passing
// the flags through and its stdout/stderr untouched: progress on stderr, the table (or with --json
// one JSON line) on stdout. From the installed package it runs the compiled dist/bench/tunnel.js
// with plain node; from a source checkout, bench/tunnel.ts with tsx.
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Command } from 'commander'

/**
 * A bench entry next to this module: `<root>/bench/<name>.js` when this file is compiled
 * (dist/shared/cli/commands/bench.js), `<root>/bench/<name>.ts` when it runs from source.
 */
export function benchScript(name = 'tunnel'): { script: string; loader: string[] } | null {
  const here = fileURLToPath(import.meta.url)
  const compiled = here.endsWith('.js')
  const root = dirname(dirname(dirname(dirname(here))))
  const script = join(root, 'bench', compiled ? `${name}.js` : `${name}.ts`)
  if (!existsSync(script)) return null
  return { script, loader: compiled ? [] : ['--import', 'tsx'] }
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
  metrics?: string
  timeout?: string
  serveTarget?: string
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
    .option('--metrics <list>', 'comma-separated subset of: up,down,8,rtt,conn,idle')
    .option('--timeout <s>', 'limit for one metric of one path, set-up included (default 90)')
    .option('--edge <host:port>', "measure an existing edge's TCP ingress (hopgate path only)")
    .option(
      '--serve-target <host:port>',
      'only run the bench target (for --edge: map an edge --tcp port to it through an agent)',
    )
    // HTTP ingress (issue 4): bench/http instead of the tunnel benchmark.
    .option(
      '--http',
      'HTTP req/s and p99 through the edge vs the target direct vs a plain Node reverse proxy',
    )
    .option('--connections <n>', 'with --http: concurrent keep-alive connections (default 32)')
    .option('--duration-ms <ms>', 'with --http: measuring time per path and round (default 5000)')
    .action(async (opts: BenchOpts) => {
      const name = opts.http ? 'http' : 'tunnel'
      const found = benchScript(name)
      if (!found) {
        process.stderr.write(`hopgate bench: the bench entry (bench/${name}.js) is missing\n`)
        process.exitCode = 2
        return
      }
      const args: string[] = []
      if (opts.json) args.push('--json')
      if (opts.quick) args.push('--quick')
      const passed = opts.http
        ? (['rounds', 'connections', 'durationMs'] as const)
        : (['bytes', 'paths', 'rounds', 'edge', 'metrics', 'timeout'] as const)
      for (const k of passed) {
        const v = opts[k]
        if (v !== undefined) args.push(`--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`, v)
      }
      if (opts.serveTarget !== undefined && !opts.http)
        args.push('--serve-target', opts.serveTarget)
      // From the package root, where `--import tsx` (source runs) resolves.
      const child = spawn(process.execPath, [...found.loader, found.script, ...args], {
        cwd: dirname(dirname(found.script)),
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
