// `hopgate bench --http` runs end to end (real target, proxy, edge and agent processes) and
// reports the three paths with requests counted and no errors. Performance is not asserted here;
// the numbers go in the closing note and docs.
import t from 'tap'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

t.test('hopgate bench --http --quick --json', async (tt) => {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      'shared/cli/main.ts',
      'bench',
      '--http',
      '--quick',
      '--json',
      '--duration-ms',
      '400',
      '--connections',
      '4',
    ],
    {
      cwd: ROOT,
      env: { ...process.env, HOPGATE_LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()))
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve))
  tt.equal(code, 0, stderr)
  const out = JSON.parse(stdout) as {
    paths: Array<{ path: string; requests: number; errors: number; rps: number; p99Ms: number }>
    ratios: { rpsVsNodeProxy: number; p99VsDirect: number }
  }
  tt.same(
    out.paths.map((p) => p.path),
    ['direct', 'node-proxy', 'hopgate'],
  )
  for (const p of out.paths) {
    tt.ok(p.requests > 0, `${p.path}: requests measured`)
    tt.equal(p.errors, 0, `${p.path}: no errors`)
    tt.ok(Number.isFinite(p.rps) && Number.isFinite(p.p99Ms), `${p.path}: numbers`)
  }
  tt.ok(Number.isFinite(out.ratios.rpsVsNodeProxy) && Number.isFinite(out.ratios.p99VsDirect))
})
