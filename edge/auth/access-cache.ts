// Caches "may this account use this project" answers from the AccessStore: allow for 90 s, deny
// for 15 s, and drops a (project, account) answer the moment the store announces a change to it,
// so a revoke takes effect on the next request. Owns no policy beyond that; the clock is injected.
import type { AccessChange, AccessStore, AccountId } from './access-store.js'

export interface AccessCacheOptions {
  store: AccessStore
  /** Monotonic ms. @default performance.now */
  now?: () => number
  /** How long an allow is reused, in ms. @default 90000 */
  allowTtlMs?: number
  /** How long a deny is reused, in ms (short: a fresh grant should work soon). @default 15000 */
  denyTtlMs?: number
  /** Entries kept; the oldest goes first past this. @default 100000 */
  maxEntries?: number
}

interface Entry {
  allowed: boolean
  expiresAt: number
}

export class AccessCache {
  private readonly entries = new Map<string, Entry>()
  private readonly inflight = new Map<string, Promise<boolean>>()
  private readonly unsubscribe: () => void
  private readonly now: () => number
  private readonly allowTtlMs: number
  private readonly denyTtlMs: number
  private readonly maxEntries: number
  // Bumped on every change: a lookup that started before a change must not cache its answer.
  private generation = 0

  constructor(private readonly opts: AccessCacheOptions) {
    this.now = opts.now ?? (() => performance.now())
    this.allowTtlMs = opts.allowTtlMs ?? 90_000
    this.denyTtlMs = opts.denyTtlMs ?? 15_000
    this.maxEntries = opts.maxEntries ?? 100_000
    this.unsubscribe = opts.store.onChange((change) => this.onChange(change))
  }

  get size(): number {
    return this.entries.size
  }

  isAllowed(project: string, account: AccountId): Promise<boolean> {
    const key = `${project} ${account}`
    const hit = this.entries.get(key)
    if (hit && hit.expiresAt > this.now()) return Promise.resolve(hit.allowed)
    if (hit) this.entries.delete(key)
    let p = this.inflight.get(key)
    if (!p) {
      const gen = this.generation
      p = this.opts.store.isCollaborator(project, account).then((allowed) => {
        if (gen === this.generation) this.remember(key, allowed)
        return allowed
      })
      const settled = p.finally(() => this.inflight.delete(key))
      settled.catch(() => {})
      this.inflight.set(key, settled)
    }
    return p
  }

  close(): void {
    this.unsubscribe()
    this.entries.clear()
  }

  private remember(key: string, allowed: boolean): void {
    if (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next()
      if (!oldest.done) this.entries.delete(oldest.value)
    }
    this.entries.set(key, {
      allowed,
      expiresAt: this.now() + (allowed ? this.allowTtlMs : this.denyTtlMs),
    })
  }

  private onChange(change: AccessChange): void {
    if (change.kind !== 'acl') return
    this.generation++
    const key = `${change.project} ${change.account}`
    this.entries.delete(key)
    this.inflight.delete(key)
  }
}
