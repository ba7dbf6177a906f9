// The demo project's sshd: OpenSSH with a throwaway config on a free loopback port when `sshd` is
// installed, else a small ssh2 server that runs commands and a shell with /bin/sh (no pty).
// Either trusts only the edges' upstream keys, as a real project's sshd would. Also the demo
// account's key pair, written 0600 into the state directory for `ssh -i`, and (with a user CA)
// the CA key and the demo key's certificate beside it.
import net from 'node:net'
import { once } from 'node:events'
import { spawn, type ChildProcess } from 'node:child_process'
import { access, mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { constants } from 'node:fs'
import { join } from 'node:path'
import ssh2 from 'ssh2'
import { keyFromText, newUserKey, type EdgeSshKey } from '../../edge/ssh/host-key.js'
import { signUserCertificate } from '../../edge/ssh/cert.js'
import {
  authorizedKeyLine,
  openSshPrivateKey,
  parseAuthorizedKey,
  parsePublicKeyBlob,
} from '../../edge/ssh/wire.js'
import { generateKeyPairSync, verify, type KeyObject } from 'node:crypto'
import type { Logger } from '../log.js'

/**
 * `sh -c` script: runs sshd ("$@") in the background without our pipe, and a reader on the pipe
 * (fd 3: a background list's stdin is /dev/null) that stops sshd at EOF. The shell exits with
 * sshd, so an sshd that fails to start is seen as an exit.
 */
const SSHD_GUARD = 'exec 3<&0; "$@" 3<&- & p=$!; (read _ <&3; kill $p 2>/dev/null) & wait $p'

const HOST = '127.0.0.1'
const SSHD_PATHS = ['/usr/sbin/sshd', '/usr/local/sbin/sshd', '/usr/bin/sshd']

export interface DemoSshd {
  port: number
  kind: 'openssh' | 'ssh2'
  close(): Promise<void>
}

async function findSshd(): Promise<string | undefined> {
  for (const p of SSHD_PATHS) {
    if (
      await access(p, constants.X_OK).then(
        () => true,
        () => false,
      )
    )
      return p
  }
  return undefined
}

async function freePort(): Promise<number> {
  const s = net.createServer().listen(0, HOST)
  await once(s, 'listening')
  const port = (s.address() as net.AddressInfo).port
  await new Promise<void>((r) => s.close(() => r()))
  return port
}

async function waitListening(port: number, child?: ChildProcess): Promise<void> {
  const end = Date.now() + 10_000
  for (;;) {
    if (child && child.exitCode !== null) throw new Error(`sshd exited with ${child.exitCode}`)
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, HOST)
      s.once('data', () => (s.destroy(), resolve(true)))
      s.once('error', () => resolve(false))
    })
    if (ok) return
    if (Date.now() > end) throw new Error('demo sshd did not start')
    await new Promise((r) => setTimeout(r, 50))
  }
}

/** Starts the project's sshd in `dir`, trusting `upstreamKeys` (authorized_keys lines). */
export async function startDemoSshd(
  dir: string,
  upstreamKeys: string[],
  log: Logger,
): Promise<DemoSshd> {
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const hostKey = newUserKey('demo-project-sshd')
  await writeFile(join(dir, 'host_ed25519'), hostKey.privateKey, { mode: 0o600 })
  await writeFile(join(dir, 'authorized_keys'), upstreamKeys.join('\n') + '\n', { mode: 0o600 })
  const port = await freePort()
  const sshd = await findSshd()
  if (sshd) {
    if (process.getuid?.() === 0) await mkdir('/run/sshd', { recursive: true, mode: 0o755 })
    const cfg = [
      `Port ${port}`,
      `ListenAddress ${HOST}`,
      `HostKey ${join(dir, 'host_ed25519')}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      'PidFile none',
      'StrictModes no',
      'UsePAM no',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'AllowTcpForwarding yes',
      'Subsystem sftp internal-sftp',
      'LogLevel ERROR',
    ]
    await writeFile(join(dir, 'sshd_config'), cfg.join('\n') + '\n')
    // Through a guard shell holding our pipe: when the demo goes, even by kill -9, the pipe
    // closes, the guard's reader sees EOF and stops sshd (it would outlive us on its port).
    const child = spawn(
      '/bin/sh',
      ['-c', SSHD_GUARD, 'sshd-guard', sshd, '-f', join(dir, 'sshd_config'), '-D', '-e'],
      { stdio: ['pipe', 'ignore', 'pipe'] },
    )
    child.stdin.on('error', () => {})
    child.stderr.on('data', (c: Buffer) => log.warn({ sshd: c.toString().trim() }, 'demo sshd'))
    await waitListening(port, child)
    return {
      port,
      kind: 'openssh',
      close: async () => {
        if (child.exitCode !== null) return
        const exited = once(child, 'exit')
        // EOF to the guard: it stops sshd and exits with it.
        child.stdin.end()
        await exited
      },
    }
  }
  // Fallback: ssh2 with exec and a plain /bin/sh shell for the edge's upstream key only.
  const trusted = upstreamKeys.map((l) => parseAuthorizedKey(l).blob)
  const server = new ssh2.Server({ hostKeys: [hostKey.privateKey] }, (conn) => {
    conn.on('error', () => {})
    conn.on('authentication', (ctx) => {
      if (ctx.method !== 'publickey' || !trusted.some((b) => b.equals(ctx.key.data))) {
        return ctx.reject(['publickey'])
      }
      // ssh2 leaves signature checks to us: a query (no signature) only learns the key is known.
      if (!ctx.signature) return ctx.accept()
      const key = parsePublicKeyBlob(ctx.key.data).key
      const good = ctx.key.algo === 'ssh-ed25519' && verify(null, ctx.blob!, key, ctx.signature)
      if (good) ctx.accept()
      else ctx.reject(['publickey'])
    })
    conn.on('session', (accept) => {
      const session = accept()
      const run = (ch: ssh2.ServerChannel, args: string[]): void => {
        const p = spawn('/bin/sh', args, { stdio: ['pipe', 'pipe', 'pipe'] })
        ch.pipe(p.stdin)
        p.stdout.pipe(ch, { end: false })
        p.stderr.pipe(ch.stderr, { end: false })
        p.on('close', (code) => {
          ch.exit(code ?? 255)
          ch.end()
        })
      }
      session.on('pty', (a) => a?.())
      session.on('env', (a) => a?.())
      session.on('exec', (a, _r, info) => {
        const ch = a()
        if (ch) run(ch, ['-c', info.command])
      })
      session.on('shell', (a) => {
        const ch = a()
        if (ch) run(ch, ['-i'])
      })
    })
  })
  server.listen(port, HOST)
  await once(server, 'listening')
  return {
    port,
    kind: 'ssh2',
    close: () => new Promise<void>((r) => server.close(() => r())),
  }
}

/** The demo account's key pair: private key at `<dir>/demo_ed25519` (0600), `.pub` beside it. */
export async function writeDemoKey(dir: string): Promise<{ path: string; key: EdgeSshKey }> {
  const key = newUserKey('hopgate-demo')
  const path = join(dir, 'demo_ed25519')
  await writeFile(path, key.privateKey, { mode: 0o600 })
  await writeFile(`${path}.pub`, key.publicLine + '\n')
  // A certificate left by an earlier run in a kept state dir names the old key: ssh would offer it.
  await rm(`${path}-cert.pub`, { force: true })
  return { path, key }
}

/** The demo's SSH user CA: `<dir>/ssh_user_ca` (0600) and `.pub`, made once and kept with the dir. */
export async function loadDemoUserCa(dir: string): Promise<{ key: KeyObject; publicLine: string }> {
  const path = join(dir, 'ssh_user_ca')
  let key: KeyObject
  try {
    key = keyFromText(await readFile(path, 'utf8'))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    key = generateKeyPairSync('ed25519').privateKey
    await writeFile(path, openSshPrivateKey(key, 'hopgate-demo-user-ca'), { mode: 0o600 })
  }
  const publicLine = authorizedKeyLine(key, 'hopgate-demo-user-ca')
  await writeFile(`${path}.pub`, publicLine + '\n')
  return { key, publicLine }
}

/**
 * Certifies the demo key for `account` (the only principal) from five minutes ago for `ttlMs`,
 * written to `<keyPath>-cert.pub`, where `ssh -i <keyPath>` finds it on its own. Returns the path.
 */
export async function writeDemoCert(
  keyPath: string,
  key: EdgeSshKey,
  ca: KeyObject,
  account: string,
  nowMs: number,
  ttlMs: number,
): Promise<string> {
  const now = Math.floor(nowMs / 1000)
  const line = signUserCertificate({
    caKey: ca,
    keyBlob: parseAuthorizedKey(key.publicLine).blob,
    keyId: `hopgate-demo-${account}`,
    principals: [account],
    validAfter: now - 300,
    validBefore: now + Math.floor(ttlMs / 1000),
  })
  const path = `${keyPath}-cert.pub`
  await writeFile(path, line + '\n')
  return path
}
