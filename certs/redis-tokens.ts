// Join tokens in Redis, so a token made for any edge can be spent at any edge, once: one hash per
// token keyed by the SHA-256 of its secret (the secret is never stored), expiring a week after the
// token does, and single use by an atomic HSETNX of `usedAt` inside a Lua script.
import type { RedisClient } from '../edge/routing/redis-client.js'
import type { JoinTokenRecord, TokenStore } from './tokens.js'

/** How long a spent or expired record is kept, so a late join hears "used"/"expired", not "invalid". */
const KEEP_AFTER_EXPIRY_MS = 7 * 24 * 3600 * 1000

// ARGV: key, usedAt. 1 if this call spent the token; 0 if it was spent already or is unknown.
const LUA_MARK_USED = `
if redis.call('EXISTS', ARGV[1]) == 0 then return 0 end
return redis.call('HSETNX', ARGV[1], 'usedAt', ARGV[2])
`

export class RedisTokenStore implements TokenStore {
  constructor(private readonly client: RedisClient) {
    if (!('hgTokenUse' in client.cmd)) {
      client.cmd.defineCommand('hgTokenUse', { lua: LUA_MARK_USED, numberOfKeys: 0 })
    }
  }

  async put(record: JoinTokenRecord): Promise<void> {
    const key = this.key(record.secretHash)
    const fields: Record<string, string> = {
      secretHash: record.secretHash,
      runnerId: record.runnerId,
      createdAt: String(record.createdAt),
      expiresAt: String(record.expiresAt),
    }
    if (record.usedAt !== undefined) fields.usedAt = String(record.usedAt)
    const keepUntil = Math.ceil(record.expiresAt + KEEP_AFTER_EXPIRY_MS)
    await this.client.run((r) =>
      r
        .multi()
        .del(key)
        .hset(key, fields)
        .pexpireat(key, keepUntil)
        .sadd(this.client.key('tokens'), record.secretHash)
        .exec(),
    )
  }

  async get(secretHash: string): Promise<JoinTokenRecord | undefined> {
    const h = await this.client.run((r) => r.hgetall(this.key(secretHash)))
    return decode(h)
  }

  async markUsed(secretHash: string, usedAt: number): Promise<boolean> {
    const cmd = this.client.cmd as unknown as {
      hgTokenUse(key: string, usedAt: string): Promise<number>
    }
    const won = await this.client.run(() => cmd.hgTokenUse(this.key(secretHash), String(usedAt)))
    return won === 1
  }

  async list(): Promise<JoinTokenRecord[]> {
    const hashes = await this.client.run((r) => r.smembers(this.client.key('tokens')))
    const out: JoinTokenRecord[] = []
    const gone: string[] = []
    for (const hash of hashes) {
      const rec = await this.get(hash)
      if (rec) out.push(rec)
      else gone.push(hash)
    }
    // The index outlives records that expired; trim it as we go.
    if (gone.length > 0) await this.client.run((r) => r.srem(this.client.key('tokens'), ...gone))
    return out.sort((a, b) => a.createdAt - b.createdAt)
  }

  private key(secretHash: string): string {
    return this.client.key('token:' + secretHash)
  }
}

function decode(h: Record<string, string>): JoinTokenRecord | undefined {
  if (!h.secretHash || !h.runnerId) return undefined
  const rec: JoinTokenRecord = {
    secretHash: h.secretHash,
    runnerId: h.runnerId,
    createdAt: Number(h.createdAt),
    expiresAt: Number(h.expiresAt),
  }
  if (h.usedAt !== undefined) rec.usedAt = Number(h.usedAt)
  return rec
}
