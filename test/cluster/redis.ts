// A real redis-server for the cluster tests, on a free high port with no persistence, killed in
// teardown. Missing redis-server skips the test outside CI and fails it in CI.
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import net from 'node:net'
import { once } from 'node:events'
import { Redis } from 'ioredis'
import type { TapTest } from '../helpers/yamux-pair.js'

export const REDIS_BIN = '/usr/bin/redis-server'

/** Why the Redis tests cannot run here (they then skip), or undefined. */
export function redisMissing(): string | undefined {
  if (existsSync(REDIS_BIN)) return undefined
  if (process.env.CI === 'true') throw new Error(`${REDIS_BIN} is required in CI`)
  return `${REDIS_BIN} not installed`
}

async function freePort(): Promise<number> {
  const s = net.createServer().listen(0, '127.0.0.1')
  await once(s, 'listening')
  const port = (s.address() as net.AddressInfo).port
  await new Promise<void>((r) => s.close(() => r()))
  return port
}

export interface RedisServer {
  url: string
  port: number
  proc: ChildProcess
  stop(): Promise<void>
}

export async function startRedis(tt: TapTest): Promise<RedisServer> {
  const port = await freePort()
  const proc = spawn(
    REDIS_BIN,
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' },
  )
  const exited = new Promise<void>((r) => proc.once('exit', () => r()))
  const stop = async (): Promise<void> => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL')
    await exited
  }
  tt.teardown(stop)
  const url = `redis://127.0.0.1:${port}`
  const end = Date.now() + 10_000
  for (;;) {
    const c = new Redis(url, {
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    })
    c.on('error', () => {})
    try {
      await c.connect()
      await c.ping()
      c.disconnect()
      break
    } catch {
      c.disconnect()
      if (Date.now() > end) throw new Error('redis-server did not start')
      await new Promise((r) => setTimeout(r, 50))
    }
  }
  return { url, port, proc, stop }
}
