// The `ssh -R` path (OpenSSH, aes128-gcm): a throwaway sshd on a loopback high port with its own
// config, host key and authorized key in a temp dir (unprivileged: as `nobody` via setpriv when we
// are root, since the privilege-separation dir may not exist; UsePAM so that non-root sshd accepts
// the account), and an `ssh -N -R` client forwarding a port on the sshd side to the bench target.
// Recipe: shared/reference/perf-baseline.md section 2, "OpenSSH".
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { chmodSync, chownSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'
import type { Cleanups } from '../lib/measure.js'
import { treeRss } from './mem.js'

function which(cmd: string): string | null {
  try {
    return execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: ['ignore', 'pipe', 'ignore'] })
      .toString()
      .trim()
  } catch {
    return null
  }
}

/** null when `ssh -R` can run here, else why not. */
export function sshAvailable(): string | null {
  const missing = ['sshd', 'ssh', 'ssh-keygen'].filter((c) => !which(c))
  return missing.length ? `not installed: ${missing.join(', ')}` : null
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const a = s.address() as net.AddressInfo
      s.close(() => resolve(a.port))
    })
  })
}

async function accepting(port: number, ms: number, proc: ChildProcess[]): Promise<void> {
  const end = Date.now() + ms
  for (;;) {
    const dead = proc.find((p) => p.exitCode !== null || p.signalCode !== null)
    if (dead) throw new Error(`ssh setup: ${dead.spawnfile} exited (${dead.exitCode})`)
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1')
      s.once('connect', () => (s.destroy(), resolve(true)))
      s.once('error', () => resolve(false))
    })
    if (ok) return
    if (Date.now() > end) throw new Error(`ssh setup: port ${port} not accepting after ${ms} ms`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

export async function startSsh(
  targetPort: number,
  cleanups: Cleanups,
): Promise<{ port: number; rss: () => number; pids: () => number[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'hopgate-bench-ssh-'))
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
  const asRoot = process.getuid?.() === 0
  const user = asRoot ? 'nobody' : userInfo().username
  const keygen = (f: string) =>
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, f)])
  keygen('host_key')
  keygen('client_key')
  writeFileSync(join(dir, 'authorized_keys'), readFileSync(join(dir, 'client_key.pub')))
  const [sshdPort, fwdPort] = [await freePort(), await freePort()]
  const sshd = which('sshd')!
  writeFileSync(
    join(dir, 'sshd_config'),
    [
      `Port ${sshdPort}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${join(dir, 'host_key')}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      'StrictModes no',
      'UsePAM yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PubkeyAuthentication yes',
      'AllowTcpForwarding yes',
      'Ciphers aes128-gcm@openssh.com',
      '',
    ].join('\n'),
  )
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', user]).toString())
    const gid = Number(execFileSync('id', ['-g', user]).toString())
    chmodSync(dir, 0o755)
    for (const f of ['host_key', 'authorized_keys', 'sshd_config', '.']) {
      chownSync(join(dir, f), uid, gid)
    }
  }
  const sshdArgs = ['-D', '-e', '-f', join(dir, 'sshd_config')]
  const daemon = asRoot
    ? spawn('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', sshd, ...sshdArgs], {
        stdio: ['ignore', 'ignore', 'pipe'],
      })
    : spawn(sshd, sshdArgs, { stdio: ['ignore', 'ignore', 'pipe'] })
  cleanups.push(() => daemon.kill('SIGKILL'))
  let log = ''
  daemon.stderr?.on('data', (c: Buffer) => (log = (log + c.toString()).slice(-2000)))
  await accepting(sshdPort, 10_000, [daemon]).catch((err: Error) => {
    throw new Error(`${err.message}; sshd said: ${log.trim().split('\n').slice(-3).join(' | ')}`)
  })
  const client = spawn(
    'ssh',
    [
      '-F',
      '/dev/null',
      '-i',
      join(dir, 'client_key'),
      '-o',
      `UserKnownHostsFile=${join(dir, 'known_hosts')}`,
      '-o',
      'StrictHostKeyChecking=no',
      '-o',
      'BatchMode=yes',
      '-o',
      'ExitOnForwardFailure=yes',
      '-o',
      'Ciphers=aes128-gcm@openssh.com',
      '-N',
      '-p',
      String(sshdPort),
      '-R',
      `127.0.0.1:${fwdPort}:127.0.0.1:${targetPort}`,
      `${user}@127.0.0.1`,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  )
  cleanups.push(() => client.kill('SIGKILL'))
  client.stderr?.on('data', (c: Buffer) => (log = (log + c.toString()).slice(-2000)))
  await accepting(fwdPort, 15_000, [daemon, client]).catch((err: Error) => {
    throw new Error(`${err.message}; ssh said: ${log.trim().split('\n').slice(-3).join(' | ')}`)
  })
  return {
    port: fwdPort,
    rss: () => treeRss(daemon.pid ?? 0) + treeRss(client.pid ?? 0),
    pids: () => [daemon.pid ?? 0, client.pid ?? 0],
  }
}
