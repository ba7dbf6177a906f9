// bench/forward.ts in its smallest form, with the edges and the agent as processes on a real Redis
// (the bench's own throwaway redis-server, then an operator's Redis given by --store): it finishes
// on its own, its --json line has the documented shape, the forwarded path's bytes went through
// the second edge's process (the direct path's did not), and it leaves no temp dir and no Redis
// key behind. The --in-process mode still runs. No timing is asserted. Needs redis-server.
import t from 'tap'
import { spawn } from 'node:child_process'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'
import { redisMissing, startRedis } from './helpers/redis.js'
import type { ForwardBenchJson } from '../bench/forward.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
t.setTimeout(300_000)

/** Runs the bench with TMPDIR at a fresh dir; returns its JSON line and the hopgate dirs left there. */
async function runBench(
  args: string[],
): Promise<{ code: number | null; r?: ForwardBenchJson; stderr: string; left: string[] }> {
  const tmp = await mkdtemp(join(tmpdir(), 'hopgate-test-bench-forward-'))
  try {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'bench/forward.ts', '--json', ...args],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TMPDIR: tmp } },
    )
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()))
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve))
    const lines = stdout.trim().split('\n')
    const r =
      code === 0 && lines.length === 1 ? (JSON.parse(lines[0]!) as ForwardBenchJson) : undefined
    // Ours only (tsx keeps its compile cache there too). The children exit on their own after
    // the bench; give their exit handlers a moment.
    const ours = async (): Promise<string[]> =>
      (await readdir(tmp)).filter((f) => f.startsWith('hopgate-'))
    let left = await ours()
    for (let i = 0; i < 50 && left.length > 0; i++) {
      await new Promise((res) => setTimeout(res, 100))
      left = await ours()
    }
    return { code, r, stderr, left }
  } finally {
    await rm(tmp, { recursive: true, force: true })
  }
}

const SMALL = ['--connections', '20', '--bytes', '8MiB', '--rounds', '1']

t.test('processes on a throwaway redis-server', { skip: redisMissing() }, async (tt) => {
  const { code, r, stderr, left } = await runBench(SMALL)
  tt.equal(code, 0, `exit 0 (stderr: ${stderr.slice(-800)})`)
  if (!r) return
  tt.equal(r.mode, 'processes')
  tt.same([r.connections, r.bytes, r.rounds], [20, 8 * 1024 * 1024, 1])
  for (const p of ['direct', 'forwarded'] as const) {
    tt.ok(r[p].p50Ms > 0 && r[p].p99Ms >= r[p].p50Ms, `${p}: p50 positive, p99 >= p50`)
    tt.ok(r[p].MBps > 0 && r[p].bestMBps >= r[p].MBps, `${p}: MB/s positive, best >= median`)
    tt.same(Object.keys(r[p].cpuMsPerMiB).sort(), ['agent', 'bench', 'edge1', 'edge2'])
  }
  // 8 MiB through TLS twice costs the relaying edge well over one 10 ms CPU tick.
  const fwd = r.forwarded.cpuMsPerMiB
  const dir = r.direct.cpuMsPerMiB
  tt.ok(fwd.edge2! * 8 >= 10, `edge-2's process carried the forwarded bytes (${fwd.edge2} ms/MiB)`)
  tt.ok(fwd.edge2! > dir.edge2! * 2, 'edge-2 works far harder forwarding than idling')
  tt.ok(fwd.edge1! > 0 && dir.edge1! > 0, "edge-1's process carried both paths")
  tt.ok(fwd.agent! > 0 && dir.agent! > 0, "the agent's process carried both paths")
  tt.ok(r.p50Ratio > 0 && r.throughputRatio > 0, 'ratios are positive')
  tt.equal(r.loadavg.length, 3)
  tt.match(stderr, /forwarded round 1: [\d.]+ MB\/s/, 'progress on stderr')
  tt.same(left, [], 'no temp dir left behind (bench and its children)')
})

t.test(
  "--store: an operator's Redis keeps only its own keys",
  { skip: redisMissing() },
  async (tt) => {
    const server = await startRedis(tt)
    const redis = new Redis(server.url)
    tt.teardown(() => redis.quit())
    await redis.set('operator:key', 'keep')
    const { code, r, stderr } = await runBench([...SMALL, '--store', server.url])
    tt.equal(code, 0, `exit 0 (stderr: ${stderr.slice(-800)})`)
    tt.equal(r?.mode, 'processes')
    tt.ok((r?.forwarded.MBps ?? 0) > 0, 'forwarded through the given Redis')
    // The edges' registry leases and the agent's records expire, but the bench removes them at once.
    tt.same(await redis.keys('*'), ['operator:key'], "only the operator's key is left")
  },
)

t.test('--in-process still runs', async (tt) => {
  const { code, r, stderr, left } = await runBench(SMALL.concat('--in-process'))
  tt.equal(code, 0, `exit 0 (stderr: ${stderr.slice(-800)})`)
  tt.equal(r?.mode, 'in-process')
  tt.ok((r?.direct.MBps ?? 0) > 0 && (r?.forwarded.MBps ?? 0) > 0, 'both paths moved bytes')
  tt.same(Object.keys(r?.forwarded.cpuMsPerMiB ?? {}), ['bench'], 'one process carries all')
  tt.same(left, [], 'no temp dir left behind')
})
