// `node --import tsx bench/ssh.ts [--mib 100] [--runs 3]`: SSH through the edge next to SSH
// straight to the same OpenSSH sshd, in one run: scp upload throughput and the time for a login
// to print its first output (`ssh host echo ready`, which includes the key exchange and auth
// on both hops). Uses the demo cluster (edge + agent + OpenSSH sshd on loopback). Prints a table,
// or one JSON line with --json. Numbers only; nothing is asserted.
import { parseArgs } from 'node:util'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { appendFile, readFile, writeFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { userInfo } from 'node:os'
import { startDemoCluster } from '../shared/demo/cluster.js'
import { createLogger } from '../shared/log.js'

const { values: flags } = parseArgs({
  options: {
    mib: { type: 'string', default: '100' },
    runs: { type: 'string', default: '3' },
    json: { type: 'boolean', default: false },
  },
})
const mib = Number(flags.mib)
const runs = Number(flags.runs)

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
const c = await startDemoCluster({
  project: '5ca1ab1e-d3e0-4000-8000-00000000be00',
  edges: 1,
  agents: 1,
  slotsPerEdge: 2,
  tunnelPort: 0,
  tcpPort: 0,
  webPort: 0,
  httpTcpPort: 0,
  adminPort: 0,
  log,
})
try {
  if (c.sshd !== 'openssh') throw new Error('bench/ssh.ts needs OpenSSH sshd installed')
  // The same user key may log in to the sshd directly, for the baseline.
  const pub = await readFile(`${c.sshKey}.pub`, 'utf8')
  await appendFile(join(c.stateDir, 'project-sshd', 'authorized_keys'), pub)
  const edgePort = c.edges[0]!.ssh.split(':').pop()!
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
    c.sshKey,
  ]
  const paths = {
    edge: { port: edgePort, user: c.project },
    direct: { port: String(c.sshdPort), user: userInfo().username },
  }
  const file = join(c.stateDir, 'bench.bin')
  await writeFile(file, randomBytes(mib * 1024 * 1024))
  const out: Record<string, { scpMBps: number; loginMs: number }> = {}
  const scp: Record<string, number[]> = { edge: [], direct: [] }
  const login: Record<string, number[]> = { edge: [], direct: [] }
  const cpuMs: Record<string, number[]> = { edge: [], direct: [] }
  // Interleaved (edge, direct, edge, ...): on a shared machine, load that comes and goes then
  // lands on both paths rather than on whichever ran during it.
  for (let i = 0; i < runs; i++) {
    for (const [name, p] of Object.entries(paths)) {
      const cpu0 = process.cpuUsage()
      const ms = await run('scp', [
        ...common,
        '-P',
        p.port,
        file,
        `${p.user}@127.0.0.1:${join(c.stateDir, `up-${name}.bin`)}`,
      ])
      const cpu = process.cpuUsage(cpu0)
      scp[name]!.push((mib * 1024 * 1024) / 1e6 / (ms / 1000))
      // This process hosts the edge and the agent: its CPU per scp is the hop's cost.
      cpuMs[name]!.push((cpu.user + cpu.system) / 1000)
      login[name]!.push(
        await run('ssh', [...common, '-p', p.port, `${p.user}@127.0.0.1`, 'echo ready']),
      )
      process.stderr.write(
        `${name} run ${i + 1}: scp ${scp[name]!.at(-1)!.toFixed(1)} MB/s` +
          ` (edge+agent process CPU ${cpuMs[name]!.at(-1)!.toFixed(0)} ms),` +
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
  if (flags.json) {
    process.stdout.write(JSON.stringify({ mib, runs, ...out, ratio }) + '\n')
  } else {
    process.stdout.write(
      [
        `path     scp ${mib} MiB (MB/s, median of ${runs})   login to first output (ms, median)`,
        `direct   ${out.direct!.scpMBps.toFixed(1).padStart(8)}                          ${out.direct!.loginMs.toFixed(0).padStart(6)}`,
        `edge     ${out.edge!.scpMBps.toFixed(1).padStart(8)}                          ${out.edge!.loginMs.toFixed(0).padStart(6)}`,
        `edge/direct: scp ${ratio.scp.toFixed(2)}x (target >= 0.8), login ${ratio.login.toFixed(2)}x (target <= 1.5)`,
        '',
      ].join('\n'),
    )
  }
  await rm(file, { force: true })
} finally {
  await c.close()
}
