// The edge registry in Redis, for edges in separate processes or hosts: one key per edge holding
// its JSON registration with a PX lease (Redis expires it: a killed edge vanishes by itself), and
// a set of edge ids to list them. Commands fail fast (no offline queue, short timeout) so a Redis
// outage never stalls an edge; a failure surfaces as HOPGATE_ERR_STORE_UNAVAILABLE.
import { Redis, type RedisOptions } from 'ioredis'
import type { Clock } from '../../shared/clock.js'
import { HopgateError, isHopgateError } from '../../shared/errors.js'
import { assertEdgeInfo, type EdgeInfo, type EdgeRecord, type EdgeRegistry } from './registry.js'

export interface RedisEdgeRegistryOptions {
  /** `redis://host:port/db`, or a client the caller owns (it is then not closed here). */
  redis: string | Redis
  clock: Clock
  /** Key prefix shared by every edge of one cluster. @default 'hopgate:' */
  prefix?: string
  /** Per-command timeout, in ms. @default 1000 */
  commandTimeoutMs?: number
}

export class RedisEdgeRegistry implements EdgeRegistry {
  private readonly redis: Redis
  private readonly owned: boolean
  private readonly prefix: string

  constructor(private readonly opts: RedisEdgeRegistryOptions) {
    this.prefix = opts.prefix ?? 'hopgate:'
    if (typeof opts.redis === 'string') {
      const o: RedisOptions = {
        // Fail fast: a queued command would hold a user connection for the whole outage.
        enableOfflineQueue: false,
        maxRetriesPerRequest: 1,
        commandTimeout: opts.commandTimeoutMs ?? 1000,
        connectTimeout: opts.commandTimeoutMs ?? 1000,
        retryStrategy: (n) => Math.min(50 * 2 ** n, 2000),
        lazyConnect: false,
      }
      this.redis = new Redis(opts.redis, o)
      // Reconnects are ioredis's job; an 'error' event without a listener would crash the edge.
      this.redis.on('error', () => {})
      this.owned = true
    } else {
      this.redis = opts.redis
      this.owned = false
    }
  }

  /** Resolves once connected (or rejects after the connect timeout): for startup checks. */
  async ready(): Promise<void> {
    await this.run(() => this.redis.ping())
  }

  async put(info: EdgeInfo, leaseTtlMs: number): Promise<EdgeRecord> {
    assertEdgeInfo(info, leaseTtlMs)
    const ttl = Math.max(1, Math.round(leaseTtlMs))
    const value = JSON.stringify({
      edgeId: info.edgeId,
      tunnelAddress: info.tunnelAddress,
      peerAddress: info.peerAddress,
      draining: info.draining,
    })
    await this.run(() =>
      this.redis
        .multi()
        .set(this.key(info.edgeId), value, 'PX', ttl)
        .sadd(this.setKey(), info.edgeId)
        .exec(),
    )
    return Object.freeze({ ...info, expiresAt: this.opts.clock.now() + ttl })
  }

  async list(): Promise<EdgeRecord[]> {
    const ids = await this.run(() => this.redis.smembers(this.setKey()))
    if (ids.length === 0) return []
    const pipe = this.redis.pipeline()
    for (const id of ids) pipe.get(this.key(id)).pttl(this.key(id))
    const replies = (await this.run(() => pipe.exec())) ?? []
    const now = this.opts.clock.now()
    const out: EdgeRecord[] = []
    const gone: string[] = []
    ids.forEach((id, i) => {
      const [getErr, raw] = replies[2 * i] ?? [null, null]
      const [, pttl] = replies[2 * i + 1] ?? [null, -2]
      if (getErr || typeof raw !== 'string' || typeof pttl !== 'number' || pttl <= 0) {
        if (!getErr && raw === null) gone.push(id)
        return
      }
      const rec = parseRecord(raw, now + pttl)
      if (rec && rec.edgeId === id) out.push(rec)
    })
    // Expired edges leave their id in the set; tidy up (best effort, a lost SREM costs nothing).
    if (gone.length > 0) this.redis.srem(this.setKey(), ...gone).catch(() => {})
    return out.sort((a, b) => (a.edgeId < b.edgeId ? -1 : 1))
  }

  async remove(edgeId: string): Promise<boolean> {
    const res = await this.run(() =>
      this.redis.multi().del(this.key(edgeId)).srem(this.setKey(), edgeId).exec(),
    )
    return Number(res?.[0]?.[1] ?? 0) > 0
  }

  async close(): Promise<void> {
    if (this.owned) this.redis.disconnect()
  }

  private key(edgeId: string): string {
    return `${this.prefix}edge:${edgeId}`
  }

  private setKey(): string {
    return `${this.prefix}edges`
  }

  /** Waits (at most one command timeout) for a connection: no queue holds commands meanwhile. */
  private connected(): Promise<void> {
    if (this.redis.status === 'ready') return Promise.resolve()
    return new Promise((resolve, reject) => {
      const done = (err?: Error): void => {
        clearTimeout(timer)
        this.redis.off('ready', onReady)
        if (err) reject(err)
        else resolve()
      }
      const onReady = (): void => done()
      const timer = setTimeout(
        () => done(new Error(`not connected (${this.redis.status})`)),
        this.opts.commandTimeoutMs ?? 1000,
      )
      this.redis.on('ready', onReady)
    })
  }

  private async run<T>(fn: () => Promise<T>): Promise<T> {
    try {
      await this.connected()
      return await fn()
    } catch (err) {
      if (isHopgateError(err)) throw err
      throw new HopgateError('HOPGATE_ERR_STORE_UNAVAILABLE', 'edge registry (redis)', {
        cause: err,
      })
    }
  }
}

function parseRecord(raw: string, expiresAt: number): EdgeRecord | undefined {
  try {
    const v = JSON.parse(raw) as Partial<EdgeInfo>
    const info: EdgeInfo = {
      edgeId: String(v.edgeId),
      tunnelAddress: String(v.tunnelAddress),
      peerAddress: String(v.peerAddress),
      draining: v.draining === true,
    }
    assertEdgeInfo(info, 1)
    return Object.freeze({ ...info, expiresAt })
  } catch {
    // Another writer's garbage must not take the listing down: that entry is skipped.
    return undefined
  }
}
