// The demo's share of an operator's Redis (`hopgate demo --store redis://...`): a key prefix no
// other run uses, and the removal of every key under it when the demo stops. It owns nothing
// else; the edges open their own connections (edge/stores.ts) and the registry its own.
import { randomBytes } from 'node:crypto'
import { Redis } from 'ioredis'

/** `hopgate-demo-<16 hex>:`, fresh per run, so a demo never reads or overwrites real keys. */
export function demoKeyPrefix(): string {
  return `hopgate-demo-${randomBytes(8).toString('hex')}:`
}

/**
 * Deletes every key under `prefix` (SCAN + UNLINK, never KEYS: a big Redis must not stall);
 * returns how many. The prefix holds no glob characters (demoKeyPrefix makes it).
 */
export async function removeKeys(url: string, prefix: string): Promise<number> {
  const redis = new Redis(url, {
    lazyConnect: true,
    maxRetriesPerRequest: 1,
    connectTimeout: 2000,
    commandTimeout: 2000,
    retryStrategy: () => null,
  })
  redis.on('error', () => {})
  try {
    await redis.connect()
    let cursor = '0'
    let removed = 0
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500)
      cursor = next
      if (keys.length > 0) removed += await redis.unlink(...keys)
    } while (cursor !== '0')
    return removed
  } finally {
    redis.disconnect()
  }
}
