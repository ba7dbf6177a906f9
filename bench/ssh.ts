// `node --import tsx bench/ssh.ts [--mib 100] [--runs 3]`: SSH through the edge next to SSH
// straight to the same OpenSSH sshd, in one run: scp upload throughput and the time for a login
// to print its first output (`ssh host echo ready`, which includes the key exchange and auth
// on both hops). As deployed, the edge and the agent are separate processes (bench/tunnel/edge.ts
// with the SSH ingress, bench/tunnel/agent.ts with the sshd as the project's `ssh` target); this
// process only starts them and the sshd, runs scp/ssh and reads each process's CPU from /proc.
// Prints a table, or one JSON line with --json. Numbers only; nothing is asserted.
import { parseArgs } from 'node:util'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, writeFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { loadavg, tmpdir, userInfo } from 'node:os'
import { startDemoSshd, writeDemoKey, type DemoSshd } from '../shared/demo/ssh.js'
import { DEMO_ACCOUNT } from '../shared/demo/cluster.js'
import { createLogger } from '../shared/log.js'
import { Child } from './lib/procs.js'
import { treeCpuMs } from './tunnel/mem.js'
import type { TunnelCmd, TunnelReply } from './tunnel/types.js'

const { values: flags } = parseArgs({
  options: {
    mib: { type: 'string', default: '100' },
    runs: { type: 'string', default: '3' },
    json: { type: 'boolean', default: false },
  },
})
const mib = Number(flags.mib)
const runs = Number(flags.runs)
const PROJECT = '5ca1ab1e-d3e0-4000-8000-00000000be00'
const RUNNER = 'bench-ssh-runner'
/** Starting the edge makes a CA (RSA keys): long on a loaded box. */
const SETUP_MS = 120_000

async function run(cmd: string, args: string[]): Promise<number> {
  const t0 = performance.now()
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] })
  let err = ''
  child.stderr.on('data', (c: Buffer) => (err += c.toString()))
  const [code] = (await once(child, 'close')) as [number]
  if (code !== 0) throw new Error(`${cmd} exited ${code}: ${err}`)
  return performance.now() - t0
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

const log = createLogger({ level: 'warn', bindings: { cmd: 'bench-ssh' } })
const dir = await mkdtemp(join(tmpdir(), 'hopgate-bench-ssh-'))
const edge = Child.spawn<TunnelCmd, TunnelReply>(new URL('./tunnel/edge.ts', import.meta.url))
const agent = Child.spawn<TunnelCmd, TunnelReply>(new URL('./tunnel/agent.ts', import.meta.url))
let sshd: DemoSshd | undefined
try {
  // The demo's account key: registered on the edge, and trusted by the sshd for the baseline.
  const demoKey = await writeDemoKey(dir)
  const e = await edge.request(
    {
      cmd: 'edge',
      project: PROJECT,
      runnerId: RUNNER,
      ssh: {
        // As the demo: a non-root sshd logs in only the user it runs as.
        upstreamUser: userInfo().username,
        account: DEMO_ACCOUNT,
        publicKey: demoKey.key.publicLine,
      },
    },
    SETUP_MS,
  )
  if (!e.tunnelPort || !e.token || !e.sshPort || !e.upstreamKey) {
    throw new Error('edge did not report its ports, a token and its upstream key')
  }
  // The project's sshd: the demo's, trusting the edge's upstream key and the account's key.
  sshd = await startDemoSshd(
    join(dir, 'project-sshd'),
    [e.upstreamKey, demoKey.key.publicLine],
    log,
  )
  if (sshd.kind !== 'openssh') throw new Error('bench/ssh.ts needs OpenSSH sshd installed')
  await agent.request(
    { cmd: 'agent', edgePort: e.tunnelPort, token: e.token, sshPort: sshd.port, project: PROJECT },
    SETUP_MS,
  )
  const ready = Date.now() + 15_000
  for (;;) {
    const s = await edge.request({ cmd: 'sessions', runnerId: RUNNER, project: PROJECT })
    if (s.sessions === 2 && s.routed) break
    if (Date.now() > ready) throw new Error('the agent did not bring up 2 sessions and a route')
    await new Promise((r) => setTimeout(r, 20))
  }

  const common = [
    '-F',
    '/dev/null',
    '-o',
    'BatchMode=yes',
    '-o',
    'IdentityAgent=none',
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    'UserKnownHostsFile=/dev/null',
    '-o',
    'StrictHostKeyChecking=no',
    '-o',
    'LogLevel=ERROR',
    '-i',
    demoKey.path,
  ]
  const paths = {
    edge: { port: String(e.sshPort), user: PROJECT },
    direct: { port: String(sshd.port), user: userInfo().username },
  }
  const procs = { edge: edge.pid!, agent: agent.pid! }
  type ProcName = keyof typeof procs
  const file = join(dir, 'bench.bin')
  await writeFile(file, randomBytes(mib * 1024 * 1024))
  const out: Record<string, { scpMBps: number; loginMs: number }> = {}
  const scp: Record<string, number[]> = { edge: [], direct: [] }
  const login: Record<string, number[]> = { edge: [], direct: [] }
  // CPU of each hopgate process per scp, by path (for direct: what they spend idle).
  const cpuMs: Record<string, Record<ProcName, number[]>> = {
    edge: { edge: [], agent: [] },
    direct: { edge: [], agent: [] },
  }
  const cpuNow = (): Record<ProcName, number> => ({
    edge: treeCpuMs(procs.edge),
    agent: treeCpuMs(procs.agent),
  })
  // Interleaved (edge, direct, edge, ...): on a shared machine, load that comes and goes then
  // lands on both paths rather than on whichever ran during it.
  for (let i = 0; i < runs; i++) {
    for (const [name, p] of Object.entries(paths)) {
      const cpu0 = cpuNow()
      const ms = await run('scp', [
        ...common,
        '-P',
        p.port,
        file,
        `${p.user}@127.0.0.1:${join(dir, `up-${name}.bin`)}`,
      ])
      const cpu1 = cpuNow()
      scp[name]!.push((mib * 1024 * 1024) / 1e6 / (ms / 1000))
      for (const k of Object.keys(procs) as ProcName[]) cpuMs[name]![k].push(cpu1[k] - cpu0[k])
      login[name]!.push(
        await run('ssh', [...common, '-p', p.port, `${p.user}@127.0.0.1`, 'echo ready']),
      )
      process.stderr.write(
        `${name} run ${i + 1}: scp ${scp[name]!.at(-1)!.toFixed(1)} MB/s` +
          ` (CPU: edge process ${cpuMs[name]!.edge.at(-1)!.toFixed(0)} ms,` +
          ` agent process ${cpuMs[name]!.agent.at(-1)!.toFixed(0)} ms),` +
          ` login ${login[name]!.at(-1)!.toFixed(0)} ms\n`,
      )
    }
  }
  for (const name of Object.keys(paths)) {
    out[name] = { scpMBps: median(scp[name]!), loginMs: median(login[name]!) }
  }
  const ratio = {
    scp: out.edge!.scpMBps / out.direct!.scpMBps,
    login: out.edge!.loginMs / out.direct!.loginMs,
  }
  // Medians per path and process, ms of user + system CPU per scp of `mib` MiB.
  const cpuMsPerScp = Object.fromEntries(
    Object.entries(cpuMs).map(([name, m]) => [
      name,
      { edge: median(m.edge), agent: median(m.agent) },
    ]),
  ) as Record<'edge' | 'direct', Record<ProcName, number>>
  if (flags.json) {
    process.stdout.write(
      JSON.stringify({
        mib,
        runs,
        ...out,
        ratio,
        cpuMsPerScp,
        processes: 'separate',
        loadavg: loadavg(),
      }) + '\n',
    )
  } else {
    const c = cpuMsPerScp.edge
    process.stdout.write(
      [
        `path     scp ${mib} MiB (MB/s, median of ${runs})   login to first output (ms, median)`,
        `direct   ${out.direct!.scpMBps.toFixed(1).padStart(8)}                          ${out.direct!.loginMs.toFixed(0).padStart(6)}`,
        `edge     ${out.edge!.scpMBps.toFixed(1).padStart(8)}                          ${out.edge!.loginMs.toFixed(0).padStart(6)}`,
        `edge/direct: scp ${ratio.scp.toFixed(2)}x (target >= 0.8), login ${ratio.login.toFixed(2)}x (target <= 1.5)`,
        `CPU per scp through the edge (ms, median): edge process ${c.edge.toFixed(0)}, agent process ${c.agent.toFixed(0)}`,
        '',
      ].join('\n'),
    )
  }
} finally {
  await Promise.all([edge.stop(), agent.stop()])
  await sshd?.close()
  await rm(dir, { recursive: true, force: true })
}
