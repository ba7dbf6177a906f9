// A throwaway redis-server on a free loopback port: no persistence, no daemon, ready once it
// answers PING. Shared by the benches that need a real shared store (bench/forward.ts) and the
// tests' helper (test/helpers/redis.ts, which adds pause/kill/restart). It owns only the process.
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import net from 'node:net'

export const REDIS_SERVER = process.env.HOPGATE_REDIS_SERVER ?? '/usr/bin/redis-server'

/** A loopback port free at the time of asking (the server binds it a moment later). */
export async function freePort(): Promise<number> {
  const srv = net.createServer()
  srv.listen(0, '127.0.0.1')
  await once(srv, 'listening')
  const port = (srv.address() as net.AddressInfo).port
  await new Promise<void>((r) => srv.close(() => r()))
  return port
}

/** Starts redis-server on `port` and resolves once it answers PING (within 5 s). */
export async function spawnRedisServer(port: number): Promise<ChildProcess> {
  const child = spawn(
    REDIS_SERVER,
    [
      ...['--port', String(port), '--bind', '127.0.0.1'],
      ...['--save', '', '--appendonly', 'no', '--daemonize', 'no', '--loglevel', 'warning'],
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  )
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
  // A missing binary reports through 'error' (ENOENT), not an exit code.
  let spawnError: Error | undefined
  child.once('error', (err) => (spawnError = err))
  // 5 s is far beyond a normal start of a few ms.
  const deadline = Date.now() + 5000
  for (;;) {
    if (spawnError) throw new Error(`${REDIS_SERVER}: ${spawnError.message}`)
    if (child.exitCode !== null) throw new Error(`redis-server exited: ${stderr}`)
    if (await ping(port)) return child
    if (Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`redis-server did not start on ${port}: ${stderr}`)
    }
    await new Promise((r) => setTimeout(r, 20))
  }
}

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1')
    const done = (ok: boolean): void => {
      s.destroy()
      resolve(ok)
    }
    s.setTimeout(500, () => done(false))
    s.on('error', () => done(false))
    s.on('connect', () => s.write('PING\r\n'))
    s.on('data', (d) => done(d.toString().startsWith('+PONG')))
  })
}

/** SIGKILL (a paused server ignores SIGTERM until continued) and wait for the exit. */
export async function killRedisServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = once(child, 'exit')
  child.kill('SIGKILL')
  await exited
}
