// `npm run bench:yamux` as an operator runs it, in its smallest form: it finishes on its own, its
// --json line has the documented shape, and every path it was asked for produced numbers. No
// timing is asserted: figures belong in the closing notes and docs/BENCHMARKS.md, not in tests.
import t from 'tap'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

t.test('bench:yamux --quick --json produces the documented JSON', async (tt) => {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'bench/yamux.ts', '--quick', '--json', '--paths', 'hopgate,tcp'],
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
  }
  tt.same(
    result.paths.map((p) => p.name),
    ['hopgate', 'tcp'],
    'the paths asked for, in order',
  )
  const fields = [
    'throughputMBps',
    'throughput8MBps',
    'rttP50Us',
    'rttP99Us',
    'opensPerSec',
    'idleHeapBytesPerStream',
  ]
  for (const path of result.paths) {
    for (const f of fields) {
      const v = path[f]
      tt.ok(typeof v === 'number' && v > 0, `${String(path.name)}.${f} is a positive number (${v})`)
    }
  }
  tt.equal(result.env.node, process.version, 'environment recorded')
})
