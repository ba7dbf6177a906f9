// A throwaway redis-server per test (every Redis test uses this one helper): started on a free
// loopback port with no persistence, killed in teardown, skipped without a server only outside
// CI (redisAvailable, or redisMissing for tap's skip option), and able to simulate outages
// (pause = SIGSTOP, so connections hang like a wedged server; kill + restart on the same port,
// so they are refused and the data is gone).
import { spawnSync } from 'node:child_process'
import {
  REDIS_SERVER,
  freePort,
  killRedisServer as killChild,
  spawnRedisServer as spawnServer,
} from '../../bench/lib/redis-server.js'
import type { TapTest } from './yamux-pair.js'

export { REDIS_SERVER }

export interface RedisServer {
  readonly port: number
  /** redis://127.0.0.1:<port> */
  readonly url: string
  /** SIGSTOP: the server keeps its sockets but answers nothing until resume(). */
  pause(): void
  resume(): void
  /** SIGKILL and wait for the exit: connections are refused, every key is lost. */
  kill(): Promise<void>
  /** A new server on the same port (after kill()). */
  restart(): Promise<void>
  /** Kills the server for good (teardown does this too). */
  stop(): Promise<void>
}

/** Whether redis-server can be run here. */
export function haveRedisServer(): boolean {
  return spawnSync(REDIS_SERVER, ['--version'], { stdio: 'ignore' }).status === 0
}

/**
 * Skips the whole test file (returns false) when redis-server is missing, but only outside CI:
 * in CI a missing server is a failure, not a skip.
 */
export function redisAvailable(t: TapTest): boolean {
  if (haveRedisServer()) return true
  if (process.env.CI === 'true') {
    t.fail(`redis-server not found at ${REDIS_SERVER} (required in CI)`)
    return false
  }
  t.plan(0, `redis-server not found at ${REDIS_SERVER}`)
  return false
}

/**
 * For tap's `skip` option: why the Redis tests cannot run here (they then skip), or undefined.
 * In CI a missing server throws instead: there it is a failure, never a skip.
 */
export function redisMissing(): string | undefined {
  if (haveRedisServer()) return undefined
  if (process.env.CI === 'true') throw new Error(`${REDIS_SERVER} is required in CI`)
  return `redis-server not found at ${REDIS_SERVER}`
}

/** Starts a server for this test; teardown kills it (also when paused). */
export async function startRedis(tt: TapTest): Promise<RedisServer> {
  const port = await freePort()
  let child = await spawnServer(port)
  const server: RedisServer = {
    port,
    url: `redis://127.0.0.1:${port}`,
    pause: () => void child.kill('SIGSTOP'),
    resume: () => void child.kill('SIGCONT'),
    kill: () => killChild(child),
    restart: async () => {
      await killChild(child)
      child = await spawnServer(port)
    },
    stop: () => killChild(child),
  }
  tt.teardown(() => server.stop())
  return server
}
