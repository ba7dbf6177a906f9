// `hopgate bench` (bench/tunnel.ts) in its smallest form: it finishes on its own, its --json line
// has the documented shape, and the paths asked for produced positive numbers. No timing is
// asserted: figures belong in docs/BENCHMARKS.md, not in tests.
import t from 'tap'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const FIELDS = [
  'throughputMBps',
  'throughputDownMBps',
  'throughput8MBps',
  'rttP50Us',
  'rttP99Us',
  'connPerSec',
  'connCpuUs',
  'idleKiBPerConn',
  'idleRssKiBPerConn',
]
// Each metric forks a fresh edge, agent and target: minutes, not seconds, on a busy 2-core box.
t.setTimeout(900_000)

/** Raw TCP has no middle process: no memory and no middle CPU, null by contract. */
const NO_MIDDLE = ['connCpuUs', 'idleKiBPerConn', 'idleRssKiBPerConn']

t.test('bench/tunnel.ts --quick --json produces the documented JSON', async (tt) => {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      'bench/tunnel.ts',
      '--quick',
      '--json',
      '--bytes',
      '8MiB',
      '--paths',
      'hopgate,raw-tcp',
    ],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  )
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()))
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve))
  tt.equal(code, 0, 'exit 0')
  const lines = stdout.trim().split('\n')
  tt.equal(lines.length, 1, 'stdout is exactly one JSON line')
  tt.ok(stderr.length > 0, 'progress went to stderr')
  const result = JSON.parse(lines[0]!) as {
    paths: Array<Record<string, number | string | null>>
    env: Record<string, unknown>
    params: Record<string, unknown>
  }
  tt.same(
    result.paths.map((p) => p.name),
    ['hopgate', 'raw-tcp'],
    'the paths asked for, in order',
  )
  for (const path of result.paths) {
    for (const f of FIELDS) {
      tt.ok(f in path, `${String(path.name)}.${f} is present`)
      const v = path[f]
      if (path.name === 'raw-tcp' && NO_MIDDLE.includes(f)) tt.equal(v, null, `raw-tcp ${f} null`)
      // RSS growth over a few hundred connections can come out negative (pages given back).
      else if (f === 'idleRssKiBPerConn') tt.type(v, 'number', `${String(path.name)}.${f} measured`)
      else tt.ok(typeof v === 'number' && v > 0, `${String(path.name)}.${f} > 0 (${v})`)
    }
  }
  tt.equal(result.env.node, process.version, 'environment recorded')
  tt.equal(result.params.quick, true, 'params recorded')
})
