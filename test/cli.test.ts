// The `hopgate` binary as a user runs it: a real process, its stdout contract (the --json ready
// line), bytes, a page and a WebSocket through the demo's edge and agent, more edges and agents,
// a clean stop on SIGTERM (temp state dir removed) and the exit codes.
import t, { type Test } from 'tap'
import net from 'node:net'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { randomBytes } from 'node:crypto'
import { createInterface } from 'node:readline'
import { existsSync } from 'node:fs'
import { copyFile, mkdtemp, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import WebSocket from 'ws'
import { collect, runHopgate, spawnHopgate, type CliResult } from './helpers/cli.js'

const hopgate = (args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess =>
  spawnHopgate(args, { env })

const run = (args: string[], env?: NodeJS.ProcessEnv): Promise<CliResult> =>
  runHopgate(args, { env })

/** Sends `payload`, half-closes, and resolves with everything the peer sent back. */
async function echoThrough(port: number, payload: Buffer): Promise<Buffer> {
  const sock = net.connect(port, '127.0.0.1')
  await once(sock, 'connect')
  const chunks: Buffer[] = []
  sock.on('data', (c: Buffer) => chunks.push(c))
  sock.end(payload)
  await once(sock, 'end')
  sock.destroy()
  return Buffer.concat(chunks)
}

function firstLine(child: ChildProcess): Promise<string> {
  const rl = createInterface({ input: child.stdout! })
  return new Promise((resolve, reject) => {
    rl.once('line', (line) => {
      rl.close()
      resolve(line)
    })
    child.once('exit', (code) => reject(new Error(`hopgate exited (${code}) before a line`)))
  })
}

interface Ready {
  event: string
  project: string
  runner: string
  stateDir: string
  edges: Array<{ tunnel: string; admin: string | null; tcp: string; httpTcp: string; ssh: string }>
  services: { tcpEcho: number; http: number }
  sshKey: string
  sshCert?: string
}

/** `ssh` (OpenSSH's client) through the demo edge as the demo account; resolves code and stdout. */
async function sshThrough(
  ready: Ready,
  command: string,
  key = ready.sshKey,
  extra: string[] = [],
): Promise<[number | null, string]> {
  const [host, port] = [
    ready.edges[0]!.ssh.replace(/:\d+$/, ''),
    ready.edges[0]!.ssh.split(':').pop()!,
  ]
  const child = spawn(
    'ssh',
    [
      '-F',
      '/dev/null',
      '-i',
      key,
      ...extra,
      '-p',
      port,
      '-o',
      'BatchMode=yes',
      '-o',
      'StrictHostKeyChecking=no',
      '-o',
      'UserKnownHostsFile=/dev/null',
      '-o',
      'LogLevel=ERROR',
      `${ready.project}@${host}`,
      command,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  )
  let out = ''
  child.stdout.on('data', (c: Buffer) => (out += c.toString()))
  const [code] = (await once(child, 'exit')) as [number | null]
  return [code, out]
}

const HOST_PORT = /^127\.0\.0\.1:[1-9]\d*$/

/** Starts `hopgate demo --json ...`, parses its ready line, and kills it at teardown if needed. */
async function startDemo(
  t: Test,
  args: string[],
): Promise<{ ready: Ready; stop: () => Promise<[number | null, NodeJS.Signals | null, string]> }> {
  const child = hopgate(['demo', '--json', ...args])
  let stderr = ''
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()))
  const exited = new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
    child.once('exit', (code, signal) => resolve([code, signal])),
  )
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  const line = await firstLine(child).catch((err: Error) => {
    throw new Error(`${err.message}; stderr: ${stderr}`)
  })
  const ready = JSON.parse(line) as Ready
  return {
    ready,
    stop: async () => {
      child.kill('SIGTERM')
      const [code, signal] = await exited
      return [code, signal, stderr]
    },
  }
}

function portOf(hostPort: string): number {
  return Number(hostPort.split(':')[1])
}

/** One WebSocket round trip through `hostPort` at /ws. */
async function wsEcho(hostPort: string, message: string): Promise<string> {
  const ws = new WebSocket(`ws://${hostPort}/ws`)
  try {
    await once(ws, 'open')
    ws.send(message)
    const [data] = (await once(ws, 'message')) as [Buffer]
    return data.toString()
  } finally {
    ws.close()
  }
}

void t.test(
  'demo --json: ready line, echo, page and WebSocket through the edge, SIGTERM',
  async (t) => {
    const { ready, stop } = await startDemo(t, [])
    t.same(
      Object.keys(ready),
      ['event', 'project', 'runner', 'stateDir', 'edges', 'services', 'token', 'sshKey'],
      'ready line has exactly its fields',
    )
    t.equal(ready.event, 'ready')
    t.match(ready.project, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/)
    t.match(ready.runner, /^[a-z0-9][a-z0-9-]*$/)
    t.ok(existsSync(ready.stateDir), 'the state dir exists while it runs')
    t.ok(ready.stateDir.startsWith(tmpdir()), 'a throwaway state dir under the temp dir')
    t.equal(ready.edges.length, 1, 'one edge by default')
    const edge = ready.edges[0]!
    t.same(
      Object.keys(edge),
      ['tunnel', 'admin', 'tcp', 'httpTcp', 'http', 'ssh'],
      'edge entry fields',
    )
    for (const k of ['tunnel', 'tcp', 'httpTcp'] as const) t.match(edge[k], HOST_PORT, k)
    t.ok(edge.admin === null || HOST_PORT.test(edge.admin), 'admin is host:port or null')
    t.same(Object.keys(ready.services), ['tcpEcho', 'http'], 'services fields')
    t.ok(ready.services.tcpEcho > 0 && ready.services.http > 0, 'service ports are real ports')

    const port = portOf(edge.tcp)
    const small = Buffer.from('hello through the tunnel\n')
    t.same(await echoThrough(port, small), small, 'small payload echoes through the edge')
    const big = randomBytes(4 * 1024 * 1024)
    const [a, b] = await Promise.all([echoThrough(port, big), echoThrough(port, big)])
    t.ok(a.equals(big) && b.equals(big), 'two concurrent 4 MiB payloads echo intact')

    // A client that resets mid-transfer must not hurt the process or the tunnel.
    const rude = net.connect(port, '127.0.0.1')
    rude.on('error', () => {})
    await once(rude, 'connect')
    rude.write(randomBytes(512 * 1024))
    rude.resetAndDestroy()
    await new Promise((r) => setTimeout(r, 100))
    t.same(await echoThrough(port, small), small, 'still echoes after a peer reset')

    const res = await fetch(`http://${edge.httpTcp}/`)
    t.equal(res.status, 200, 'GET / through the edge')
    const page = await res.text()
    t.ok(page.includes(ready.project), 'the page names the project')
    t.ok(page.includes(ready.runner), 'the page names the runner')
    t.equal(await wsEcho(edge.httpTcp, 'ping over ws'), 'ping over ws', 'WebSocket echo at /ws')
    // SSH ingress (issue 5): the demo account's key, the project's sshd behind the tunnel.
    t.match(edge.ssh, HOST_PORT, 'ssh')
    const [sshCode, sshOut] = await sshThrough(ready, 'echo hello-$((40+2)); exit 3')
    t.equal(sshOut.trim(), 'hello-42', 'ssh through the edge runs the command in the project')
    t.equal(sshCode, 3, "the command's exit status comes back")

    const [code, signal, stderr] = await stop()
    t.equal(signal, null, 'not killed by the signal')
    t.equal(code, 0, `exits 0 on SIGTERM${stderr ? `; stderr: ${stderr}` : ''}`)
    t.notOk(existsSync(ready.stateDir), 'the temp state dir is removed')
  },
)

void t.test('demo --json --ssh-user-ca: the demo account logs in by certificate', async (t) => {
  const { ready, stop } = await startDemo(t, ['--ssh-user-ca'])
  t.same(
    Object.keys(ready),
    ['event', 'project', 'runner', 'stateDir', 'edges', 'services', 'token', 'sshKey', 'sshCert'],
    'the ready line gains sshCert, last',
  )
  t.equal(ready.sshCert, `${ready.sshKey}-cert.pub`, 'beside the key, where ssh -i finds it')
  const listed = await collect(spawn('ssh-keygen', ['-L', '-f', ready.sshCert!]))
  t.equal(listed.code, 0, 'ssh-keygen reads the certificate')
  t.match(listed.stdout, /user certificate/, 'a user certificate')
  t.match(listed.stdout, /Principals:\s+demo\s/, 'for the demo account only')
  const certOnly = ['-o', 'IdentitiesOnly=yes', '-o', `CertificateFile=${ready.sshCert}`]
  const [code, out] = await sshThrough(ready, 'echo by-cert', ready.sshKey, certOnly)
  t.equal(code, 0, 'ssh with CertificateFile logs in')
  t.equal(out.trim(), 'by-cert', 'and runs the command in the project')

  // The same private key elsewhere, with no certificate or a wrong one beside it.
  const dir = await mkdtemp(join(tmpdir(), 'hopgate-cli-cert-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const key = join(dir, 'k')
  await copyFile(ready.sshKey, key)
  await copyFile(`${ready.sshKey}.pub`, `${key}.pub`)
  const bare = await sshThrough(ready, 'echo no', key, ['-o', 'IdentitiesOnly=yes'])
  t.equal(bare[0], 255, 'the bare key is refused: it is not registered, the certificate is needed')
  const keygen = (args: string[]): Promise<CliResult> =>
    collect(spawn('ssh-keygen', ['-q', ...args]))
  t.equal(
    (await keygen(['-t', 'ed25519', '-N', '', '-C', 'other-ca', '-f', join(dir, 'other_ca')])).code,
    0,
  )
  const signWith = async (ca: string, principal: string): Promise<void> => {
    await rm(`${key}-cert.pub`, { force: true })
    const r = await keygen([
      '-s',
      ca,
      '-I',
      'wrong',
      '-n',
      principal,
      '-V',
      '-5m:+1h',
      `${key}.pub`,
    ])
    t.equal(r.code, 0, `ssh-keygen signs (${principal})${r.stderr ? `: ${r.stderr}` : ''}`)
  }
  const withCert = ['-o', 'IdentitiesOnly=yes', '-o', `CertificateFile=${key}-cert.pub`]
  await signWith(join(dir, 'other_ca'), 'demo')
  t.equal(
    (await sshThrough(ready, 'echo no', key, withCert))[0],
    255,
    'a certificate from another CA is refused',
  )
  await signWith(join(ready.stateDir, 'ssh_user_ca'), 'someone-else')
  t.equal(
    (await sshThrough(ready, 'echo no', key, withCert))[0],
    255,
    "the demo CA's certificate for another principal is refused",
  )
  await signWith(join(ready.stateDir, 'ssh_user_ca'), 'demo')
  const good = await sshThrough(ready, 'echo by-ssh-keygen-cert', key, withCert)
  t.same(
    good,
    [0, 'by-ssh-keygen-cert\n'],
    "ssh-keygen's certificate from the demo CA (its key file) logs in",
  )

  const [exit, signal, stderr] = await stop()
  t.equal(signal, null)
  t.equal(exit, 0, `exits 0 on SIGTERM${stderr ? `; stderr: ${stderr}` : ''}`)
})

void t.test('demo --json --edges 2 --agents 2: both edges reach the project', async (t) => {
  const { ready, stop } = await startDemo(t, ['--edges', '2', '--agents', '2', '--project'])
  t.equal(ready.edges.length, 2, 'two edges in the ready line')
  t.not(ready.project, '5ca1ab1e-d3e0-4000-8000-00000000de30', '--project alone picks a random id')
  const [e1, e2] = ready.edges as [Ready['edges'][0], Ready['edges'][0]]
  t.not(e1.tunnel, e2.tunnel, 'distinct tunnel listeners')
  const msg = Buffer.from('through the second edge\n')
  t.same(await echoThrough(portOf(e2.tcp), msg), msg, 'echo through the second edge')
  t.same(await echoThrough(portOf(e1.tcp), msg), msg, 'and through the first')
  const page = await (await fetch(`http://${e2.httpTcp}/`)).text()
  t.ok(page.includes(ready.project) && page.includes(ready.runner), 'page through the second edge')
  t.equal(await wsEcho(e2.httpTcp, 'ws via edge 2'), 'ws via edge 2', 'WebSocket via edge 2')

  const [code, signal, stderr] = await stop()
  t.equal(signal, null, 'not killed by the signal')
  t.equal(code, 0, `exits 0 on SIGTERM${stderr ? `; stderr: ${stderr}` : ''}`)
  t.notOk(existsSync(ready.stateDir), 'the temp state dir is removed')
})

void t.test('exit codes', async (t) => {
  // Independent processes: start them together, check them in order.
  const [help, unknown, badPort, version, badConfig] = await Promise.all([
    run(['--help']),
    run(['nosuchcmd']),
    run(['demo', '--port', '70000']),
    run(['version', '--json']),
    run(['demo', '--port', '0'], { HOPGATE_LOG_LEVEL: 'loud' }),
  ])
  t.equal(help.code, 0, '--help exits 0')
  t.match(help.stdout, /Usage: hopgate/)
  t.match(help.stdout, /demo/)

  t.equal(unknown.code, 2, 'unknown command exits 2')
  t.match(unknown.stderr, /unknown command/)

  t.equal(badPort.code, 2, 'an invalid option value exits 2')

  t.equal(version.code, 0)
  t.match(JSON.parse(version.stdout), { version: /^\d+\.\d+\.\d+/ })

  t.equal(badConfig.code, 78, 'a configuration error exits 78')
  t.match(badConfig.stderr, /HOPGATE_ERR_CONFIG_INVALID/)
})
