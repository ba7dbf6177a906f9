// The demo's share of an operator's Redis (`hopgate demo --store redis://...`): a key prefix no
// other run uses, a liveness key under it while the run lives, the removal of every key under it
// when the demo stops, and the sweep of runs that died without stopping (kill -9). It owns
// nothing else; the edges open their own connections (edge/stores.ts) and the registry its own.
import { randomBytes } from 'node:crypto'
import { Redis } from 'ioredis'

/** `hopgate-demo-<16 hex>:`, fresh per run, so a demo never reads or overwrites real keys. */
export function demoKeyPrefix(): string {
  return `hopgate-demo-${randomBytes(8).toString('hex')}:`
}

/** What a run's keys look like: the prefix demoKeyPrefix() makes, and anything after it. */
const DEMO_KEY = /^(hopgate-demo-[0-9a-f]{16}:)/
/** Under a run's prefix while the run lives; it expires on its own once nobody renews it. */
export const ALIVE_KEY = 'demo:alive'
/** How long the liveness key lives without renewal, ms (renewed every third of it). @default 30000 */
export const ALIVE_TTL_MS = 30_000

/** One-shot work fails fast; the liveness renewal must survive a Redis blip (`reconnect`). */
function connect(url: string, reconnect = false): Redis {
  const redis = new Redis(url, {
    lazyConnect: true,
    maxRetriesPerRequest: 1,
    connectTimeout: 2000,
    commandTimeout: 2000,
    retryStrategy: reconnect ? (n) => Math.min(n * 200, 2000) : () => null,
  })
  redis.on('error', () => {})
  return redis
}

export interface DemoLiveness {
  /** Stops renewing (the key then goes with removeKeys, or expires). */
  stop(): void
}

/**
 * Sets `<prefix>demo:alive` with a TTL and renews it every third of the TTL, so other demo runs
 * can tell this prefix from one whose process was killed. Set before anything else is written
 * under the prefix: a sweep never sees this run's keys without its liveness key.
 */
export async function keepAlive(
  url: string,
  prefix: string,
  ttlMs = ALIVE_TTL_MS,
): Promise<DemoLiveness> {
  // Without reconnects, one dropped connection would stop the renewals for good, and the next
  // run's sweep would remove this live run's keys 30 s later.
  const redis = connect(url, true)
  await redis.connect()
  const renew = (): Promise<unknown> => redis.set(`${prefix}${ALIVE_KEY}`, '1', 'PX', ttlMs)
  await renew()
  // A missed renewal (Redis away a moment) is retried at the next tick; the TTL covers two.
  const timer = setInterval(() => void renew().catch(() => {}), Math.floor(ttlMs / 3))
  timer.unref()
  return {
    stop: () => {
      clearInterval(timer)
      redis.disconnect()
    },
  }
}

/**
 * Removes the keys of earlier demo runs that died without cleaning up: every `hopgate-demo-<16
 * hex>:` prefix whose liveness key is gone. Live runs (theirs renewed) and keys outside that
 * pattern are never touched. Returns the prefixes removed and how many keys went.
 */
export async function sweepDeadRuns(url: string): Promise<{ prefixes: string[]; keys: number }> {
  const redis = connect(url)
  try {
    await redis.connect()
    const prefixes = new Set<string>()
    let cursor = '0'
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', 'hopgate-demo-*', 'COUNT', 500)
      cursor = next
      for (const k of keys) {
        const m = DEMO_KEY.exec(k)
        if (m) prefixes.add(m[1]!)
      }
    } while (cursor !== '0')
    const dead: string[] = []
    let removed = 0
    for (const prefix of prefixes) {
      if ((await redis.exists(`${prefix}${ALIVE_KEY}`)) === 1) continue
      dead.push(prefix)
      removed += await unlinkUnder(redis, prefix)
    }
    return { prefixes: dead, keys: removed }
  } finally {
    redis.disconnect()
  }
}

/**
 * Deletes every key under `prefix` (SCAN + UNLINK, never KEYS: a big Redis must not stall);
 * returns how many. The prefix holds no glob characters (demoKeyPrefix makes it).
 */
export async function removeKeys(url: string, prefix: string): Promise<number> {
  const redis = connect(url)
  try {
    await redis.connect()
    return await unlinkUnder(redis, prefix)
  } finally {
    redis.disconnect()
  }
}

async function unlinkUnder(redis: Redis, prefix: string): Promise<number> {
  let cursor = '0'
  let removed = 0
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500)
    cursor = next
    if (keys.length > 0) removed += await redis.unlink(...keys)
  } while (cursor !== '0')
  return removed
}
