// Real components for SSH tests: an OpenSSH sshd with a throwaway config on a free loopback
// port (as the current user; root in CI), an edge with SSH ingress and an enrolled agent whose
// project's `ssh` target is that sshd, user keys on disk, and an `ssh` runner that returns
// exit code, stdout and stderr. Nothing here skips: sshd and ssh are required.
import net from 'node:net'
import { once } from 'node:events'
import { spawn, type SpawnOptions } from 'node:child_process'
import { chmod, mkdir, readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { userInfo } from 'node:os'
import { tempDir } from '../helpers/echo.js'
import type { TapTest } from '../helpers/yamux-pair.js'
import { initCa } from '../../certs/pki.js'
import { createJoinToken, FileTokenStore } from '../../certs/tokens.js'
import { joinOverTls, saveRunnerIdentity } from '../../certs/enroll.js'
import { wallClock } from '../../certs/state.js'
import { startEdge, type Edge, type EdgeOptions, type EdgeSshOptions } from '../../edge/edge.js'
import { startAgent } from '../../agent/agent.js'
import { loadEdgeKey } from '../../edge/ssh/host-key.js'
import { newUserKey } from '../../edge/ssh/host-key.js'
import { fingerprint, parseAuthorizedKey } from '../../edge/ssh/wire.js'

const GiB = 1024 ** 3
export const P = '0f8fad5b-d9cb-469f-a165-70867728950e'
export const Q = '1b4e28ba-2fa1-11d2-883f-0016d3cca427'

export async function freePort(): Promise<number> {
  const s = net.createServer()
  s.listen(0, '127.0.0.1')
  await once(s, 'listening')
  const port = (s.address() as net.AddressInfo).port
  await new Promise<void>((r) => s.close(() => r()))
  return port
}

export async function until(
  cond: () => boolean | Promise<boolean>,
  what: string,
  ms = 10_000,
): Promise<void> {
  const end = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`not reached in ${ms} ms: ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

/** Pids whose parent is `ppid` (Linux /proc). */
async function childPids(ppid: number): Promise<number[]> {
  const out: number[] = []
  for (const name of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(name)) continue
    const stat = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => '')
    // The command name is in parentheses and may hold spaces: fields resume after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    if (Number(fields[1]) === ppid) out.push(Number(name))
  }
  return out
}

export interface Sshd {
  port: number
  dir: string
}

/** An OpenSSH sshd trusting `authorizedKeys`, with sftp and TCP forwarding on. */
export async function startSshd(tt: TapTest, authorizedKeys: string[]): Promise<Sshd> {
  const dir = await tempDir(tt, 'sshd')
  const hostKey = newUserKey('sshd-host')
  await writeFile(join(dir, 'host_ed25519'), hostKey.privateKey, { mode: 0o600 })
  await writeFile(join(dir, 'authorized_keys'), authorizedKeys.join('\n') + '\n', { mode: 0o600 })
  if (process.getuid?.() === 0) await mkdir('/run/sshd', { recursive: true, mode: 0o755 })
  const port = await freePort()
  const cfg = [
    `Port ${port}`,
    'ListenAddress 127.0.0.1',
    `HostKey ${join(dir, 'host_ed25519')}`,
    `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
    'PidFile none',
    'StrictModes no',
    'UsePAM no',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'PubkeyAuthentication yes',
    'PermitRootLogin prohibit-password',
    'AllowTcpForwarding yes',
    'AcceptEnv HOPGATE_*',
    'Subsystem sftp internal-sftp',
    `LogLevel ${process.env.SSHD_LOG ?? 'ERROR'}`,
  ]
  await writeFile(join(dir, 'sshd_config'), cfg.join('\n') + '\n')
  // Its own process group: sshd forks a child per connection that outlives a SIGTERM to the
  // listener and would hold our stderr pipe (and the test process) open.
  const child = spawn('/usr/sbin/sshd', ['-f', join(dir, 'sshd_config'), '-D', '-e'], {
    stdio: ['ignore', 'ignore', 'pipe'],
    detached: true,
  })
  let stderr = ''
  child.stderr.on('data', (c: Buffer) => {
    stderr += c.toString()
    if (process.env.SSHD_LOG) process.stderr.write(c)
  })
  tt.teardown(async () => {
    // Per-connection sshd children start their own session (setsid), so the group kill misses
    // them; they are the listener's children, found by parent pid, and would keep the agent's
    // target sockets (and this process) alive.
    for (const pid of await childPids(child.pid!)) {
      try {
        process.kill(pid, 'SIGTERM')
      } catch {
        // already gone
      }
    }
    try {
      process.kill(-child.pid!, 'SIGTERM')
    } catch {
      // already gone
    }
    child.stderr.destroy()
  })
  await until(
    () =>
      new Promise<boolean>((resolve) => {
        if (child.exitCode !== null) throw new Error(`sshd exited: ${stderr}`)
        const s = net.connect(port, '127.0.0.1')
        s.once('data', () => (s.destroy(), resolve(true)))
        s.once('error', () => resolve(false))
      }),
    'sshd listening',
  )
  return { port, dir }
}

export interface Cluster {
  edge: Edge
  edgeDir: string
  sshPort: number
  /** known_hosts file pinning the edge's host key. */
  knownHosts: string
  hostKeyLine: string
  upstreamKeyLine: string
}

/** Edge (with SSH ingress) and agent; `projects` maps project -> its sshd port. */
export async function startCluster(
  tt: TapTest,
  projects: Record<string, { sshPort: number; allowedPorts?: number[] }>,
  ssh: Partial<EdgeSshOptions> = {},
  edgeDirIn?: string,
  edgeExtra: Partial<EdgeOptions> = {},
): Promise<Cluster> {
  const edgeDir = edgeDirIn ?? (await tempDir(tt, 'edge'))
  const agentDir = await tempDir(tt, 'agent')
  const { pki } = await initCa(edgeDir, { edgeId: 'edge-1' })
  const token = await createJoinToken(new FileTokenStore(edgeDir), {
    runnerId: 'runner-a',
    ttlMs: 60_000,
    edgeCaFingerprint: pki.edgeCa.fingerprint.base64url,
    clock: wallClock,
  })
  const edge = await startEdge({
    stateDir: edgeDir,
    tunnelPort: 0,
    heartbeatIntervalMs: 500,
    ssh: { port: 0, upstreamUser: userInfo().username, ...ssh },
    ...edgeExtra,
  })
  tt.teardown(() => edge.close())
  const identity = await joinOverTls({ host: '127.0.0.1', port: edge.tunnel.address.port, token })
  await saveRunnerIdentity(agentDir, identity)
  const agent = await startAgent({
    stateDir: agentDir,
    edges: [`127.0.0.1:${edge.tunnel.address.port}`],
    slots: 2,
    projects: Object.fromEntries(
      Object.entries(projects).map(([p, t]) => [
        p,
        { host: '127.0.0.1', sshPort: t.sshPort, allowedPorts: t.allowedPorts ?? [] },
      ]),
    ),
    report: () => ({
      capacity: { maxProjects: 10, cpus: 2, memoryBytes: 8 * GiB },
      storage: { freeBytes: 50 * GiB, totalBytes: 100 * GiB },
    }),
  })
  tt.teardown(() => agent.close())
  await until(() => edge.sessions.sessions('runner-a').length > 0, 'agent session')
  for (const p of Object.keys(projects)) {
    await until(async () => (await edge.store.getRoute(p))?.runner === 'runner-a', 'route')
  }
  const host = await loadEdgeKey(edgeDir, 'host_ed25519')
  const upstream = await loadEdgeKey(edgeDir, 'upstream_ed25519')
  const sshPort = edge.ssh!.address.port
  const knownHosts = join(edgeDir, 'known_hosts')
  await writeFile(knownHosts, `[127.0.0.1]:${sshPort} ${host.publicLine}\n`)
  return {
    edge,
    edgeDir,
    sshPort,
    knownHosts,
    hostKeyLine: host.publicLine,
    upstreamKeyLine: upstream.publicLine,
  }
}

export interface UserKey {
  path: string
  publicLine: string
  fingerprint: string
}

export async function writeUserKey(dir: string, name: string): Promise<UserKey> {
  const k = newUserKey(name)
  const path = join(dir, name)
  await writeFile(path, k.privateKey, { mode: 0o600 })
  await chmod(path, 0o600)
  await writeFile(`${path}.pub`, k.publicLine + '\n')
  return { path, publicLine: k.publicLine, fingerprint: k.fingerprint }
}

/** Registers a key for an account in the edge's access store. */
export async function addKey(edge: Edge, account: string, line: string): Promise<void> {
  const k = parseAuthorizedKey(line)
  await edge.access.addSshKey({
    account,
    fingerprint: fingerprint(k.blob),
    type: k.type,
    publicKey: k.blob.toString('base64'),
    comment: k.comment,
  })
}

/** Options every OpenSSH invocation gets: no user config, pinned host key, no agent, batch. */
export function sshOpts(c: Pick<Cluster, 'knownHosts'>, key: string): string[] {
  return [
    '-F',
    '/dev/null',
    '-o',
    `UserKnownHostsFile=${c.knownHosts}`,
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    'BatchMode=yes',
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    'IdentityAgent=none',
    '-o',
    'LogLevel=ERROR',
    '-i',
    key,
  ]
}

export interface RunResult {
  code: number | null
  stdout: Buffer
  stderr: string
}

export async function run(
  cmd: string,
  args: string[],
  opts: SpawnOptions & { input?: Buffer | string; timeoutMs?: number } = {},
): Promise<RunResult> {
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], ...opts })
  const out: Buffer[] = []
  let stderr = ''
  child.stdout!.on('data', (c: Buffer) => out.push(c))
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()))
  child.stdin!.on('error', () => {})
  child.stdin!.end(opts.input ?? '')
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000)
  const [code] = (await once(child, 'close')) as [number | null]
  clearTimeout(timer)
  return { code, stdout: Buffer.concat(out), stderr }
}
