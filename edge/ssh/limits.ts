// Pre-authentication limits for the SSH listener (ssh2 has none): at most `maxUnauthenticated`
// connections that have not logged in, `maxUnauthenticatedPerSource` of them per source
// address, `maxAuthTries` refused attempts per connection, a login grace deadline, and a penalty
// box for sources that keep failing. At the total cap a newcomer from a lighter source evicts
// the oldest pending connection of the heaviest source, so a flood from a few addresses cannot
// lock everyone else out (OpenSSH's MaxStartups drops at random instead). Pure bookkeeping on an injected clock; the server applies
// the verdicts (refuse at accept, disconnect) and owns the sockets.
import type { Clock, TimerHandle } from '../../shared/clock.js'
import { HopgateError, type ErrorCode } from '../../shared/errors.js'

export interface PreAuthLimitOptions {
  /** Time to authenticate after accept, ms. @default 20000 */
  loginGraceMs?: number
  /** Unauthenticated connections in all. @default 100 */
  maxUnauthenticated?: number
  /** Unauthenticated connections per source address. @default 10 */
  maxUnauthenticatedPerSource?: number
  /** Refused auth attempts per connection before disconnect. @default 6 */
  maxAuthTries?: number
  /** Failed connections (tries used up, grace expired) from one source that earn a penalty. @default 5 */
  penaltyAfterFailures?: number
  /** Window those failures are counted in, ms. @default 60000 */
  penaltyWindowMs?: number
  /** How long a penalised source is refused at accept, ms. @default 60000 */
  penaltyMs?: number
  /** Sources remembered for penalties at most (oldest forgotten first). @default 10000 */
  maxTrackedSources?: number
}

export const PREAUTH_DEFAULTS: Required<PreAuthLimitOptions> = {
  loginGraceMs: 20_000,
  maxUnauthenticated: 100,
  maxUnauthenticatedPerSource: 10,
  maxAuthTries: 6,
  penaltyAfterFailures: 5,
  penaltyWindowMs: 60_000,
  penaltyMs: 60_000,
  maxTrackedSources: 10_000,
}

export interface PreAuthTicket {
  /** Logged in: no longer counts against the limits, the grace timer stops. */
  authenticated(): void
  /** A refused attempt; returns a code when the connection must be closed. */
  failedAttempt(): ErrorCode | undefined
  /** Connection closed (idempotent); a close before login that failed counts toward a penalty. */
  close(): void
}

interface PendingEntry {
  source: string
  released: boolean
  expel(code: ErrorCode): void
}

interface SourceRecord {
  failures: number[]
  penaltyUntil: number
}

export class PreAuthLimiter {
  private readonly o: Required<PreAuthLimitOptions>
  private unauthenticated = 0
  private readonly perSource = new Map<string, number>()
  private readonly sources = new Map<string, SourceRecord>()
  private readonly pendingList = new Set<PendingEntry>()

  constructor(
    private readonly clock: Clock,
    opts: PreAuthLimitOptions = {},
  ) {
    this.o = { ...PREAUTH_DEFAULTS, ...opts }
  }

  get pending(): number {
    return this.unauthenticated
  }

  /**
   * Admits a new connection from `source`, or throws the refusal (HOPGATE_ERR_SSH_PENALTY,
   * HOPGATE_ERR_SSH_PREAUTH_LIMIT). `onExpelled` fires at most once, with
   * HOPGATE_ERR_SSH_LOGIN_GRACE when login took too long or HOPGATE_ERR_SSH_PREAUTH_LIMIT when
   * a newcomer evicted this connection; the caller closes it.
   */
  admit(source: string, onExpelled: (code: ErrorCode) => void): PreAuthTicket {
    const now = this.clock.now()
    const rec = this.sources.get(source)
    if (rec && rec.penaltyUntil > now) throw new HopgateError('HOPGATE_ERR_SSH_PENALTY')
    const mine = this.perSource.get(source) ?? 0
    if (mine >= this.o.maxUnauthenticatedPerSource) {
      throw new HopgateError('HOPGATE_ERR_SSH_PREAUTH_LIMIT', 'per source')
    }
    if (this.unauthenticated >= this.o.maxUnauthenticated && !this.evictFor(mine)) {
      throw new HopgateError('HOPGATE_ERR_SSH_PREAUTH_LIMIT', 'total')
    }
    this.unauthenticated++
    this.perSource.set(source, mine + 1)
    let state: 'pending' | 'authenticated' | 'closed' = 'pending'
    let tries = 0
    let failed = false
    const entry: PendingEntry = { source, released: false, expel: () => {} }
    const release = (): void => {
      this.pendingList.delete(entry)
      if (entry.released) return
      entry.released = true
      this.unauthenticated--
      const n = (this.perSource.get(source) ?? 1) - 1
      if (n <= 0) this.perSource.delete(source)
      else this.perSource.set(source, n)
    }
    const timer: TimerHandle = this.clock.setTimeout(() => {
      if (state !== 'pending') return
      failed = true
      onExpelled('HOPGATE_ERR_SSH_LOGIN_GRACE')
    }, this.o.loginGraceMs)
    let expelled = false
    entry.expel = (code) => {
      if (expelled || state !== 'pending') return
      expelled = true
      onExpelled(code)
    }
    this.pendingList.add(entry)
    return {
      authenticated: () => {
        if (state !== 'pending') return
        state = 'authenticated'
        this.clock.clearTimeout(timer)
        release()
      },
      failedAttempt: () => {
        if (state !== 'pending') return undefined
        tries++
        if (tries < this.o.maxAuthTries) return undefined
        failed = true
        return 'HOPGATE_ERR_SSH_TOO_MANY_TRIES'
      },
      close: () => {
        if (state === 'closed') return
        const wasPending = state === 'pending'
        state = 'closed'
        this.clock.clearTimeout(timer)
        if (!wasPending) return
        release()
        // A connection that gave up after refused attempts also counts: scanners rarely use 6.
        if (failed || tries > 0) this.recordFailure(source)
      },
    }
  }

  /** Expels the oldest pending connection of the heaviest source, if it is heavier than `mine`. */
  private evictFor(mine: number): boolean {
    let heaviest: string | undefined
    let most = mine
    for (const [src, n] of this.perSource) {
      if (n > most) {
        most = n
        heaviest = src
      }
    }
    if (heaviest === undefined) return false
    // Insertion order: the first match is the oldest.
    for (const e of this.pendingList) {
      if (e.source === heaviest) {
        this.pendingList.delete(e)
        // The slot is handed over now; the caller's close() of that connection releases it.
        this.unauthenticated--
        const n = (this.perSource.get(heaviest) ?? 1) - 1
        if (n <= 0) this.perSource.delete(heaviest)
        else this.perSource.set(heaviest, n)
        e.released = true
        e.expel('HOPGATE_ERR_SSH_PREAUTH_LIMIT')
        return true
      }
    }
    return false
  }

  private recordFailure(source: string): void {
    const now = this.clock.now()
    let rec = this.sources.get(source)
    if (!rec) {
      if (this.sources.size >= this.o.maxTrackedSources) {
        const oldest = this.sources.keys().next().value
        if (oldest !== undefined) this.sources.delete(oldest)
      }
      rec = { failures: [], penaltyUntil: 0 }
      this.sources.set(source, rec)
    }
    rec.failures = rec.failures.filter((t) => now - t < this.o.penaltyWindowMs)
    rec.failures.push(now)
    if (rec.failures.length >= this.o.penaltyAfterFailures) {
      rec.penaltyUntil = now + this.o.penaltyMs
      rec.failures = []
    }
  }
}
