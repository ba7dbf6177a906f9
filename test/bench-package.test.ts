// `hopgate bench` as installed: the compiled package (dist/ only, no bench/*.ts, no tsx loader)
// runs its own edge, agent and comparison paths, and `--edge` measures a running edge whose TCP
// ingress leads, through an agent, to `hopgate bench --serve-target`. The package is transpiled
// with esbuild into the layout `tsc -p tsconfig.build.json` emits (tsc itself takes a minute here).
// Behaviour only: exit codes, the JSON shape, positive numbers; no timing is asserted.
import t, { type Test } from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { copyFileSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'
import { initCa } from '../certs/pki.js'
import { createJoinToken, FileTokenStore } from '../certs/tokens.js'
import { joinOverTls, saveRunnerIdentity } from '../certs/enroll.js'
import { wallClock } from '../certs/state.js'
import { startEdge } from '../edge/edge.js'
import { startAgent } from '../agent/agent.js'
import { parseTcpMapping } from '../edge/ingress/tcp.js'
import { tempDir } from './helpers/echo.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const BUILT = ['shared', 'edge', 'agent', 'certs', 'bench']
const P = '5d0c3a8e-1b2f-4c6d-9e7a-3f4b5c6d7e8f'
const GiB = 1024 ** 3

// Each metric forks a fresh edge, agent and target: minutes, not seconds, on a busy 2-core box.
t.setTimeout(900_000)

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.d.ts'))
    .map((e) => join(e.parentPath, e.name))
}

/** A package directory as npm installs it: package.json, dist/, and the dependencies. */
async function installedPackage(): Promise<string> {
  const pkg = mkdtempSync(join(tmpdir(), 'hopgate-pkg-'))
  await build({
    entryPoints: BUILT.flatMap(sources),
    outdir: join(pkg, 'dist'),
    outbase: ROOT,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    logLevel: 'error',
  })
  copyFileSync(join(ROOT, 'package.json'), join(pkg, 'package.json'))
  symlinkSync(join(ROOT, 'node_modules'), join(pkg, 'node_modules'))
  return pkg
}

interface Run {
  code: number | null
  stdout: string
  stderr: string
}

/** Runs the installed CLI from a directory outside the package (as a user on PATH would). */
async function hopgate(pkg: string, args: string[]): Promise<Run> {
  const child = spawn(process.execPath, [join(pkg, 'dist/shared/cli/main.js'), ...args], {
    cwd: tmpdir(),
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()))
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
  const [code] = (await once(child, 'close')) as [number | null]
  return { code, stdout, stderr }
}

type Row = Record<string, number | string | null>
function parse(t: Test, run: Run): { paths: Row[]; notes: Record<string, string[]> } {
  t.equal(run.code, 0, `exit 0${run.code ? `; stderr: ${run.stderr.slice(-400)}` : ''}`)
  const lines = run.stdout.trim().split('\n')
  t.equal(lines.length, 1, 'stdout is one JSON line')
  return JSON.parse(lines[0]!) as { paths: Row[]; notes: Record<string, string[]> }
}

t.test('the installed package runs the bench without sources or tsx', async (t) => {
  const pkg = await installedPackage()
  t.teardown(() => rmSync(pkg, { recursive: true, force: true }))
  const tsLeft = readdirSync(join(pkg, 'dist'), { recursive: true }).filter((f) =>
    String(f).endsWith('.ts'),
  )
  t.same(tsLeft, [], 'no TypeScript in the package')

  t.test('own edge, agent and paths', async (t) => {
    const run = await hopgate(pkg, [
      'bench',
      '--json',
      '--quick',
      '--bytes',
      '1MiB',
      '--paths',
      'hopgate,node-proxy',
      '--metrics',
      'conn,idle',
      '--timeout',
      '300',
    ])
    const out = parse(t, run)
    t.same(
      out.paths.map((p) => p.name),
      ['hopgate', 'node-proxy'],
    )
    for (const p of out.paths) {
      for (const f of ['connPerSec', 'connCpuUs', 'idleKiBPerConn']) {
        t.ok(typeof p[f] === 'number' && p[f] > 0, `${p.name}.${f} > 0 (${p[f]})`)
      }
      // RSS growth over a few hundred connections can come out negative (pages given back).
      t.type(p.idleRssKiBPerConn, 'number', `${p.name}.idleRssKiBPerConn is measured`)
      t.equal(p.rttP50Us, null, 'metrics not asked for are null')
    }
  })

  t.test('--edge measures a running edge through --serve-target', async (t) => {
    const target = spawn(
      process.execPath,
      [join(pkg, 'dist/shared/cli/main.js'), 'bench', '--serve-target', '127.0.0.1:0'],
      { cwd: tmpdir(), stdio: ['ignore', 'pipe', 'inherit'] },
    )
    // SIGTERM, which the CLI passes on to the bench process it started (SIGKILL would orphan it).
    t.teardown(async () => {
      const exited = once(target, 'exit')
      target.kill('SIGTERM')
      target.stdout?.destroy()
      await exited
    })
    const targetPort = await readyPort(target)

    const edgeDir = await tempDir(t, 'bench-edge')
    const agentDir = await tempDir(t, 'bench-agent')
    const { pki } = await initCa(edgeDir, { edgeId: 'bench-edge' })
    const token = await createJoinToken(new FileTokenStore(edgeDir), {
      runnerId: 'bench-runner',
      ttlMs: 15 * 60_000,
      edgeCaFingerprint: pki.edgeCa.fingerprint.base64url,
      clock: wallClock,
    })
    const edge = await startEdge({
      stateDir: edgeDir,
      tunnelPort: 0,
      tcp: [parseTcpMapping(`127.0.0.1:0=${P}:${targetPort}`)],
      heartbeatIntervalMs: 1000,
    })
    t.teardown(() => edge.close())
    const tunnelPort = edge.tunnel.address.port
    await saveRunnerIdentity(
      agentDir,
      await joinOverTls({ host: '127.0.0.1', port: tunnelPort, token }),
    )
    const agent = await startAgent({
      stateDir: agentDir,
      edges: [`127.0.0.1:${tunnelPort}`],
      slots: 2,
      projects: { [P]: { host: '127.0.0.1', allowedPorts: [targetPort] } },
      report: () => ({
        capacity: { maxProjects: 10, cpus: 2, memoryBytes: 8 * GiB },
        storage: { freeBytes: 50 * GiB, totalBytes: 100 * GiB },
      }),
    })
    t.teardown(() => agent.close())
    const end = Date.now() + 15_000
    while (edge.sessions.sessions('bench-runner').length < 2) {
      if (Date.now() > end) throw new Error('the agent did not connect')
      await new Promise((r) => setTimeout(r, 20))
    }

    const ingress = edge.tcp[0]!.address.port
    const run = await hopgate(pkg, [
      'bench',
      '--json',
      '--quick',
      '--bytes',
      '1MiB',
      '--edge',
      `127.0.0.1:${ingress}`,
      '--metrics',
      'up,down,rtt,conn',
      '--timeout',
      '300',
    ])
    const out = parse(t, run)
    t.same(
      out.paths.map((p) => p.name),
      ['hopgate'],
      'only the hopgate path',
    )
    const row = out.paths[0]!
    for (const f of [
      'throughputMBps',
      'throughputDownMBps',
      'rttP50Us',
      'rttP99Us',
      'connPerSec',
    ]) {
      t.ok(typeof row[f] === 'number' && row[f] > 0, `${f} > 0 (${row[f]})`)
    }
    t.equal(row.idleKiBPerConn, null, 'no memory for an edge in another process')
    t.equal(row.connCpuUs, null, 'no CPU for an edge in another process')
    t.match(out.notes.hopgate?.join(' '), /external edge/, 'the note says which edge')
  })
})

function readyPort(child: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    let buf = ''
    child.once('exit', (code) => reject(new Error(`--serve-target exited (${code})`)))
    child.stdout!.on('data', (c: Buffer) => {
      buf += c.toString()
      const nl = buf.indexOf('\n')
      if (nl < 0) return
      const line = JSON.parse(buf.slice(0, nl)) as { event: string; target: string }
      resolve(Number(line.target.split(':').pop()))
    })
  })
}
