// `hopgate bench --http`: requests per second and latency percentiles of small keep-alive HTTP
// requests against one target server, hit three ways in the same run: directly, through a plain
// Node reverse proxy (http.request + a keep-alive Agent, the baseline), and through hopgate
// (HTTP ingress -> yamux over mutual TLS -> agent -> target, with a bearer token and the ACL).
// Target, proxy, edge and agent are separate processes (this file forked in a role); the load
// generator is this process. Progress on stderr; the table, or with --json one line, on stdout.
import { fork, type ChildProcess } from 'node:child_process'
import http from 'node:http'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir, cpus } from 'node:os'
import { join } from 'node:path'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'

const PROJECT = '5ca1ab1e-d3e0-4000-8000-0000000be7c4'
const BODY = Buffer.alloc(1024, 'x')
const GiB = 1024 ** 3

interface Flags {
  json: boolean
  durationMs: number
  warmupMs: number
  connections: number
  rounds: number
}

function parseFlags(argv: string[]): Flags & { role?: string; args: Record<string, string> } {
  const args: Record<string, string> = {}
  const flags: Flags = { json: false, durationMs: 5000, warmupMs: 1000, connections: 32, rounds: 2 }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!
    const next = (): string => {
      const v = argv[++i]
      if (v === undefined) usage(`${a} needs a value`)
      return v
    }
    if (a === '--json') flags.json = true
    else if (a === '--quick') Object.assign(flags, { durationMs: 1500, warmupMs: 300, rounds: 1 })
    else if (a === '--duration-ms') flags.durationMs = int(next(), a, 100, 600_000)
    else if (a === '--warmup-ms') flags.warmupMs = int(next(), a, 0, 60_000)
    else if (a === '--connections') flags.connections = int(next(), a, 1, 1024)
    else if (a === '--rounds') flags.rounds = int(next(), a, 1, 20)
    else if (a.startsWith('--') && !['--json', '--quick'].includes(a)) args[a.slice(2)] = next()
    else usage(`unknown argument ${a}`)
  }
  return { ...flags, ...(args.role ? { role: args.role } : {}), args }
}

function int(v: string, name: string, min: number, max: number): number {
  const n = Number(v)
  if (!/^\d+$/.test(v) || n < min || n > max) usage(`${name}: an integer from ${min} to ${max}`)
  return n
}

function usage(msg: string): never {
  process.stderr.write(
    `bench/http.ts: ${msg}\nusage: [--quick] [--json] [--duration-ms N] [--warmup-ms N] ` +
      `[--connections N] [--rounds N]\n`,
  )
  process.exit(2)
}

// ---- roles (child processes) ------------------------------------------------------------------

async function listen(server: http.Server): Promise<number> {
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return (server.address() as AddressInfo).port
}

async function roleTarget(): Promise<Record<string, unknown>> {
  const server = http.createServer((req, res) => {
    req.resume()
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': BODY.length })
      res.end(BODY)
    })
  })
  server.keepAliveTimeout = 60_000
  return { port: await listen(server) }
}

async function roleProxy(to: number): Promise<Record<string, unknown>> {
  // The baseline: what a minimal Node reverse proxy does (no auth, no header policy).
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 })
  const server = http.createServer((req, res) => {
    const up = http.request(
      {
        host: '127.0.0.1',
        port: to,
        method: req.method,
        path: req.url,
        headers: req.headers,
        agent,
      },
      (upRes) => {
        res.writeHead(upRes.statusCode ?? 502, upRes.headers)
        upRes.pipe(res)
      },
    )
    up.on('error', () => res.destroy())
    req.pipe(up)
  })
  server.keepAliveTimeout = 60_000
  return { port: await listen(server) }
}

async function roleEdge(): Promise<Record<string, unknown>> {
  const { initCa } = await import('../certs/pki.js')
  const { createJoinToken, FileTokenStore } = await import('../certs/tokens.js')
  const { wallClock } = await import('../certs/state.js')
  const { startEdge } = await import('../edge/edge.js')
  const { UserTokens } = await import('../edge/auth/user-tokens.js')
  const stateDir = await mkdtemp(join(tmpdir(), 'hopgate-bench-http-edge-'))
  process.once('disconnect', () => void rm(stateDir, { recursive: true, force: true }))
  const { pki } = await initCa(stateDir, { edgeId: 'bench-edge' })
  const joinToken = await createJoinToken(new FileTokenStore(stateDir), {
    runnerId: 'bench-runner',
    ttlMs: 15 * 60_000,
    edgeCaFingerprint: pki.edgeCa.fingerprint.base64url,
    clock: wallClock,
  })
  const edge = await startEdge({
    stateDir,
    tunnelPort: 0,
    http: { host: '127.0.0.1', port: 0, limits: { keepAliveTimeoutMs: 60_000 } },
  })
  await edge.access.grant(PROJECT, 'bench')
  const { token } = (await UserTokens.open(stateDir)).mint({ account: 'bench', ttlMs: 3_600_000 })
  const ready = async (): Promise<boolean> =>
    edge.sessions.sessions('bench-runner').length > 0 &&
    (await edge.store.getRoute(PROJECT))?.runner === 'bench-runner'
  process.on('message', (m: { cmd?: string }) => {
    if (m.cmd === 'ready?') void ready().then((ok) => process.send!({ ready: ok }))
  })
  return {
    tunnel: edge.tunnel.address.port,
    http: edge.http!.address.port,
    joinToken,
    token,
  }
}

async function roleAgent(
  tunnel: number,
  joinToken: string,
  target: number,
): Promise<Record<string, unknown>> {
  const { joinOverTls, saveRunnerIdentity } = await import('../certs/enroll.js')
  const { startAgent } = await import('../agent/agent.js')
  const stateDir = await mkdtemp(join(tmpdir(), 'hopgate-bench-http-agent-'))
  process.once('disconnect', () => void rm(stateDir, { recursive: true, force: true }))
  await saveRunnerIdentity(
    stateDir,
    await joinOverTls({ host: '127.0.0.1', port: tunnel, token: joinToken }),
  )
  await startAgent({
    stateDir,
    edges: [`127.0.0.1:${tunnel}`],
    slots: 2,
    projects: { [PROJECT]: { host: '127.0.0.1', allowedPorts: [target] } },
    report: () => ({
      capacity: { maxProjects: 10, cpus: 2, memoryBytes: 8 * GiB },
      storage: { freeBytes: 50 * GiB, totalBytes: 100 * GiB },
    }),
  })
  return {}
}

async function runRole(role: string, args: Record<string, string>): Promise<void> {
  // A role never outlives the bench: the IPC channel closing ends it.
  process.once('disconnect', () => setTimeout(() => process.exit(0), 200).unref())
  process.once('SIGTERM', () => process.exit(0))
  let out: Record<string, unknown>
  if (role === 'target') out = await roleTarget()
  else if (role === 'proxy') out = await roleProxy(Number(args.to))
  else if (role === 'edge') out = await roleEdge()
  else if (role === 'agent')
    out = await roleAgent(Number(args.tunnel), args.join!, Number(args.target))
  else usage(`unknown role ${role}`)
  process.send!({ up: out })
}

// ---- the load generator (parent) ----------------------------------------------------------------

const children = new Set<ChildProcess>()

async function spawnRole(
  role: string,
  args: Record<string, string | number> = {},
): Promise<ChildProcess & { up: Record<string, unknown> }> {
  const argv = ['--role', role, ...Object.entries(args).flatMap(([k, v]) => [`--${k}`, String(v)])]
  const child = fork(fileURLToPath(import.meta.url), argv, {
    // HOPGATE_BENCH_PROF=<dir>: V8 CPU profiles of every role, for finding hot spots.
    // Plain node from the compiled package, tsx from a checkout (as bench/lib/procs.ts does).
    execArgv: [
      ...(import.meta.url.endsWith('.ts') ? ['--import', 'tsx'] : []),
      ...(process.env.HOPGATE_BENCH_PROF
        ? ['--cpu-prof', '--cpu-prof-dir', process.env.HOPGATE_BENCH_PROF]
        : []),
    ],
    env: { ...process.env, HOPGATE_LOG_LEVEL: 'silent' },
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  })
  children.add(child)
  child.once('exit', () => children.delete(child))
  const [msg] = (await Promise.race([
    once(child, 'message'),
    once(child, 'exit').then(() => {
      throw new Error(`bench role ${role} exited before it was up`)
    }),
  ])) as [{ up: Record<string, unknown> }]
  return Object.assign(child, { up: msg.up })
}

interface Result {
  path: string
  requests: number
  errors: number
  rps: number
  p50Ms: number
  p99Ms: number
}

async function load(
  name: string,
  port: number,
  path: string,
  headers: Record<string, string>,
  flags: Flags,
): Promise<Result> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: flags.connections })
  const one = (): Promise<boolean> =>
    new Promise((resolve) => {
      const req = http.get({ host: '127.0.0.1', port, path, headers, agent }, (res) => {
        res.resume()
        res.once('end', () => resolve(res.statusCode === 200))
        res.once('error', () => resolve(false))
      })
      req.once('error', () => resolve(false))
    })
  const phase = async (ms: number, samples: number[] | null): Promise<number> => {
    const end = performance.now() + ms
    let errors = 0
    await Promise.all(
      Array.from({ length: flags.connections }, async () => {
        while (performance.now() < end) {
          const t0 = performance.now()
          const ok = await one()
          if (!ok) errors++
          else samples?.push(performance.now() - t0)
        }
      }),
    )
    return errors
  }
  await phase(flags.warmupMs, null)
  const samples: number[] = []
  const t0 = performance.now()
  const errors = await phase(flags.durationMs, samples)
  const elapsed = (performance.now() - t0) / 1000
  agent.destroy()
  samples.sort((a, b) => a - b)
  const q = (p: number): number =>
    samples[Math.min(samples.length - 1, Math.floor(p * samples.length))] ?? NaN
  return {
    path: name,
    requests: samples.length,
    errors,
    rps: samples.length / elapsed,
    p50Ms: q(0.5),
    p99Ms: q(0.99),
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]!
}

async function main(): Promise<void> {
  const flags = parseFlags(process.argv.slice(2))
  if (flags.role) return runRole(flags.role, flags.args)
  const log = (m: string): boolean => process.stderr.write(`bench http: ${m}\n`)
  try {
    const target = await spawnRole('target')
    const targetPort = target.up.port as number
    const proxy = await spawnRole('proxy', { to: targetPort })
    const edge = await spawnRole('edge')
    await spawnRole('agent', {
      tunnel: edge.up.tunnel as number,
      join: edge.up.joinToken as string,
      target: targetPort,
    })
    for (let i = 0; ; i++) {
      edge.send({ cmd: 'ready?' })
      const [m] = (await once(edge, 'message')) as [{ ready?: boolean }]
      if (m.ready) break
      if (i > 500) throw new Error('the agent never connected')
      await new Promise((r) => setTimeout(r, 20))
    }
    const paths: Array<{
      name: string
      port: number
      path: string
      headers: Record<string, string>
    }> = [
      { name: 'direct', port: targetPort, path: '/bench', headers: {} },
      { name: 'node-proxy', port: proxy.up.port as number, path: '/bench', headers: {} },
      {
        name: 'hopgate',
        port: edge.up.http as number,
        path: `/${PROJECT}/server/${targetPort}/bench`,
        headers: { authorization: `Bearer ${edge.up.token as string}` },
      },
    ]
    const rounds: Result[][] = []
    for (let r = 0; r < flags.rounds; r++) {
      const round: Result[] = []
      for (const p of paths) {
        log(
          `round ${r + 1}/${flags.rounds}: ${p.name} (${flags.connections} connections, ${flags.durationMs} ms)`,
        )
        round.push(await load(p.name, p.port, p.path, p.headers, flags))
      }
      rounds.push(round)
    }
    const results: Result[] = paths.map((p, i) => ({
      path: p.name,
      requests: rounds.reduce((n, r) => n + r[i]!.requests, 0),
      errors: rounds.reduce((n, r) => n + r[i]!.errors, 0),
      rps: median(rounds.map((r) => r[i]!.rps)),
      p50Ms: median(rounds.map((r) => r[i]!.p50Ms)),
      p99Ms: median(rounds.map((r) => r[i]!.p99Ms)),
    }))
    const [direct, nodeProxy, hop] = results as [Result, Result, Result]
    const ratios = {
      rpsVsNodeProxy: hop.rps / nodeProxy.rps,
      p99VsDirect: hop.p99Ms / direct.p99Ms,
    }
    const env = { node: process.version, cpus: cpus().length, cpu: cpus()[0]?.model ?? '' }
    if (flags.json) {
      process.stdout.write(
        JSON.stringify({
          paths: results,
          ratios,
          env,
          params: { ...flags, bodyBytes: BODY.length },
        }) + '\n',
      )
      return
    }
    const row = (r: Result): string =>
      `${r.path.padEnd(12)}${r.rps.toFixed(0).padStart(10)}${r.p50Ms.toFixed(2).padStart(10)}${r.p99Ms.toFixed(2).padStart(10)}${String(r.errors).padStart(8)}`
    process.stdout.write(
      [
        `HTTP keep-alive GET, ${BODY.length} B body, ${flags.connections} connections, ` +
          `${flags.durationMs} ms x ${flags.rounds} round(s) per path (medians); ${env.cpus} CPU(s), Node ${env.node}`,
        `${'path'.padEnd(12)}${'req/s'.padStart(10)}${'p50 ms'.padStart(10)}${'p99 ms'.padStart(10)}${'errors'.padStart(8)}`,
        ...results.map(row),
        `hopgate req/s vs node-proxy: ${ratios.rpsVsNodeProxy.toFixed(2)}x (target >= 0.7)`,
        `hopgate p99 vs direct:       ${ratios.p99VsDirect.toFixed(2)}x (target <= 2)`,
        '',
      ].join('\n'),
    )
  } finally {
    for (const c of children) c.kill('SIGTERM')
  }
}

await main()
