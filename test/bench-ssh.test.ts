// bench/ssh.ts in its smallest form: it finishes on its own, its --json line has the documented
// shape, both paths produced positive numbers, and the hop's CPU shows up in the separate edge and
// agent processes (the bench process hosts neither). No timing is asserted. Needs OpenSSH (sshd,
// ssh, scp), as the SSH tests do: nothing here skips.
import t from 'tap'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
t.setTimeout(300_000)

interface SshBench {
  mib: number
  runs: number
  edge: { scpMBps: number; loginMs: number }
  direct: { scpMBps: number; loginMs: number }
  ratio: { scp: number; login: number }
  cpuMsPerScp: Record<'edge' | 'direct', { edge: number; agent: number }>
  processes: string
  loadavg: number[]
}

t.test('bench/ssh.ts --json: edge and agent in their own processes', async (tt) => {
  // 16 MiB: enough for the edge and the agent to spend well over one 10 ms CPU tick each.
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'bench/ssh.ts', '--mib', '16', '--runs', '1', '--json'],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  )
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()))
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve))
  tt.equal(code, 0, `exit 0 (stderr: ${stderr.slice(-500)})`)
  const lines = stdout.trim().split('\n')
  tt.equal(lines.length, 1, 'stdout is exactly one JSON line')
  tt.match(stderr, /edge run 1: scp .* MB\/s \(CPU: edge process \d+ ms, agent process \d+ ms\)/)
  const r = JSON.parse(lines[0]!) as SshBench
  tt.equal(r.mib, 16)
  tt.equal(r.runs, 1)
  tt.equal(r.processes, 'separate')
  for (const path of ['edge', 'direct'] as const) {
    tt.ok(r[path].scpMBps > 0, `${path} scp MB/s is positive`)
    tt.ok(r[path].loginMs > 0, `${path} login ms is positive`)
  }
  tt.ok(r.ratio.scp > 0 && r.ratio.login > 0, 'ratios are positive')
  tt.ok(r.cpuMsPerScp.edge.edge > 0, 'the edge process carried the scp')
  tt.ok(r.cpuMsPerScp.edge.agent > 0, 'the agent process carried the scp')
  tt.ok(r.cpuMsPerScp.direct.edge >= 0 && r.cpuMsPerScp.direct.agent >= 0, 'direct CPU present')
  tt.equal(r.loadavg.length, 3)
})
