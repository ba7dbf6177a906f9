// The deny list in Redis, shared by every edge: one hash (`runner:<id>` / `serial:<HEX>` -> entry
// JSON) plus a pub/sub message per change, so every edge learns of a revocation at once and can
// close the runner's sessions (onRevoked). Answers from memory; while Redis is unreachable the
// last list read stays in force (never "nobody is revoked").
import { randomUUID } from 'node:crypto'
import type { Clock } from '../shared/clock.js'
import type { RedisClient } from '../edge/routing/redis-client.js'
import { normalizeSerial, type RevocationEntry, type Revocations } from './revocation.js'
import { assertId, wallClock, wallNow } from './state.js'

/** Pub/sub channel (unprefixed) of revocation changes. */
export const REVOCATION_CHANNEL = 'revocations'

// ARGV: hash key, field, entry JSON, channel, message. 1 if newly added.
const LUA_ADD = `
if redis.call('HSETNX', ARGV[1], ARGV[2], ARGV[3]) == 0 then return 0 end
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
`

export class RedisRevocations implements Revocations {
  private readonly origin = randomUUID()
  private entries: RevocationEntry[] = []
  private runners = new Set<string>()
  private serials = new Set<string>()
  private readonly listeners = new Set<(runnerId: string) => void>()
  private unsubscribe: (() => void) | undefined

  private constructor(
    private readonly client: RedisClient,
    private readonly clock: Clock,
  ) {
    if (!('hgRevoke' in client.cmd)) {
      client.cmd.defineCommand('hgRevoke', { lua: LUA_ADD, numberOfKeys: 0 })
    }
  }

  /** Subscribes, then reads the list (in that order, so no change falls between the two). */
  static async open(opts: { client: RedisClient; clock?: Clock }): Promise<RedisRevocations> {
    const list = new RedisRevocations(opts.client, opts.clock ?? wallClock)
    list.unsubscribe = await opts.client.subscribe(REVOCATION_CHANNEL, (m) => list.onMessage(m))
    await list.reload()
    return list
  }

  async reload(): Promise<void> {
    const all = await this.client.run((r) => r.hgetall(this.hashKey))
    this.set(Object.values(all).map((raw) => JSON.parse(raw) as RevocationEntry))
  }

  isRevoked(runnerId: string, serial?: string): boolean {
    if (this.runners.has(runnerId)) return true
    return serial !== undefined && this.serials.has(serial.replace(/:/g, '').toUpperCase())
  }

  list(): RevocationEntry[] {
    return this.entries.map((e) => ({ ...e }))
  }

  /** Calls `listener` with each runner id revoked, by this edge or any other. */
  onRevoked(listener: (runnerId: string) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  async revoke(runnerId: string, opts: { reason?: string } = {}): Promise<boolean> {
    assertId(runnerId)
    return this.add({ kind: 'runner', value: runnerId, reason: opts.reason })
  }

  async revokeSerial(serial: string, opts: { reason?: string } = {}): Promise<boolean> {
    return this.add({ kind: 'serial', value: normalizeSerial(serial), reason: opts.reason })
  }

  async unrevoke(runnerId: string): Promise<boolean> {
    assertId(runnerId)
    const removed = await this.client.run((r) =>
      r
        .multi()
        .hdel(this.hashKey, `runner:${runnerId}`)
        .publish(this.channel, JSON.stringify({ o: this.origin, reload: true }))
        .exec(),
    )
    await this.reload()
    return removed?.[0]?.[1] === 1
  }

  close(): void {
    this.unsubscribe?.()
    this.listeners.clear()
  }

  private get hashKey(): string {
    return this.client.key('revoked')
  }

  private get channel(): string {
    return this.client.key(REVOCATION_CHANNEL)
  }

  private async add(entry: Omit<RevocationEntry, 'revokedAt'>): Promise<boolean> {
    const e: RevocationEntry = {
      kind: entry.kind,
      value: entry.value,
      revokedAt: wallNow(this.clock),
    }
    if (entry.reason !== undefined) e.reason = entry.reason.slice(0, 200)
    const cmd = this.client.cmd as unknown as { hgRevoke(...a: string[]): Promise<number> }
    const added = await this.client.run(() =>
      cmd.hgRevoke(
        this.hashKey,
        `${e.kind}:${e.value}`,
        JSON.stringify(e),
        this.channel,
        JSON.stringify({ o: this.origin, entry: e }),
      ),
    )
    if (added === 1) this.apply(e)
    else await this.reload()
    return added === 1
  }

  private onMessage(message: string): void {
    let m: { o?: string; entry?: RevocationEntry; reload?: boolean }
    try {
      m = JSON.parse(message) as typeof m
    } catch {
      return
    }
    if (m.o === this.origin) return
    if (m.entry) this.apply(m.entry)
    // An unrevoke: rare, so re-read rather than patch; a failure leaves the stricter list.
    if (m.reload) this.reload().catch(() => undefined)
  }

  private apply(e: RevocationEntry): void {
    if (this.entries.some((x) => x.kind === e.kind && x.value === e.value)) return
    this.set([...this.entries, e])
    if (e.kind === 'runner') {
      for (const l of [...this.listeners]) {
        try {
          l(e.value)
        } catch (err) {
          process.emitWarning(err as Error)
        }
      }
    }
  }

  private set(entries: RevocationEntry[]): void {
    this.entries = entries.sort((a, b) => a.revokedAt - b.revokedAt)
    this.runners = new Set(entries.filter((e) => e.kind === 'runner').map((e) => e.value))
    this.serials = new Set(entries.filter((e) => e.kind === 'serial').map((e) => e.value))
  }
}
