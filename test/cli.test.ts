// The `hopgate` binary as a user runs it: a real process, its stdout contract (the --json ready
// line), bytes through the demo tunnel, a clean stop on SIGTERM and the exit codes.
import t from 'tap'
import net from 'node:net'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { createInterface } from 'node:readline'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const MAIN = 'shared/cli/main.ts'

function hopgate(args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    cwd: ROOT,
    env: { ...process.env, HOPGATE_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
}

interface Done {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

function collect(child: ChildProcess): Promise<Done> {
  let stdout = ''
  let stderr = ''
  child.stdout?.on('data', (c: Buffer) => (stdout += c.toString()))
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()))
  return new Promise((resolve, reject) => {
    child.once('error', reject)
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }))
  })
}

function run(args: string[], env?: NodeJS.ProcessEnv): Promise<Done> {
  return collect(hopgate(args, env))
}

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

void t.test(
  'demo --json --port 0: ready line, echo through the tunnel, SIGTERM exits 0',
  async (t) => {
    const child = hopgate(['demo', '--json', '--port', '0'])
    let stderr = ''
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()))
    const exited = new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
      child.once('exit', (code, signal) => resolve([code, signal])),
    )
    t.teardown(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    })

    const line = await firstLine(child)
    const ready = JSON.parse(line) as { event: string; tcp: string; tunnel: string }
    t.same(Object.keys(ready), ['event', 'tcp', 'tunnel'], 'ready line has exactly its fields')
    t.equal(ready.event, 'ready')
    t.match(ready.tcp, /^127\.0\.0\.1:\d+$/)
    t.match(ready.tunnel, /^127\.0\.0\.1:\d+$/)
    const port = Number(ready.tcp.split(':')[1])
    t.not(port, 0, 'port 0 is reported as the real port')

    const small = Buffer.from('hello through the tunnel\n')
    t.same(await echoThrough(port, small), small, 'small payload echoes')

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

    child.kill('SIGTERM')
    const [code, signal] = await exited
    t.equal(signal, null, 'not killed by the signal')
    t.equal(code, 0, `exits 0 on SIGTERM${stderr ? `; stderr: ${stderr}` : ''}`)
  },
)

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
