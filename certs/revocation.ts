// The deny list: runner ids and certificate serials the edge refuses even though their
// certificates verify, persisted as pki/revoked.json (atomic, locked, 0600). Closing the live
// sessions of a revoked runner is the edge's job; this module only answers isRevoked().
import { z } from 'zod'
import type { Clock } from '../shared/clock.js'
import { HopgateError } from '../shared/errors.js'
import { assertId, ensurePrivateDir, pkiPath, readJsonFile, wallClock, wallNow } from './state.js'
import { withFileLock, writeFileAtomic } from './state.js'

export interface RevocationEntry {
  kind: 'runner' | 'serial'
  /** A runner id, or a serial in upper-case hex without separators. */
  value: string
  /** Epoch milliseconds. */
  revokedAt: number
  reason?: string
}

const EntrySchema = z.object({
  kind: z.enum(['runner', 'serial']),
  value: z.string().min(1).max(128),
  revokedAt: z.number(),
  reason: z.string().max(200).optional(),
})
const FileSchema = z.object({ version: z.literal(1), entries: z.array(EntrySchema) })

/** X509Certificate#serialNumber is upper-case hex; operators may paste colons or lower case. */
export function normalizeSerial(serial: string): string {
  const s = serial.replace(/:/g, '').toUpperCase()
  if (!/^[0-9A-F]{1,128}$/.test(s)) throw new TypeError('serial must be hex')
  return s
}

/**
 * What an edge needs of a deny list, whichever holds it: the file (RevocationList, one edge) or
 * Redis (redis-revocation.ts, shared by every edge). isRevoked answers from memory; reload()
 * re-reads the source, for changes made elsewhere.
 */
export interface Revocations {
  isRevoked(runnerId: string, serial?: string): boolean
  list(): RevocationEntry[]
  /** Denies every certificate naming `runnerId`, past and future. True if newly revoked. */
  revoke(runnerId: string, opts?: { reason?: string }): Promise<boolean>
  revokeSerial(serial: string, opts?: { reason?: string }): Promise<boolean>
  unrevoke(runnerId: string): Promise<boolean>
  reload(): Promise<void>
}

export class RevocationList implements Revocations {
  readonly path: string
  private entries: RevocationEntry[] = []
  private runners = new Set<string>()
  private serials = new Set<string>()

  private constructor(
    private readonly stateDir: string,
    private readonly clock: Clock,
  ) {
    this.path = pkiPath(stateDir, 'revoked.json')
  }

  /** Opens (and reads) the list; an absent file is an empty list. */
  static async open(stateDir: string, opts: { clock?: Clock } = {}): Promise<RevocationList> {
    const list = new RevocationList(stateDir, opts.clock ?? wallClock)
    await list.reload()
    return list
  }

  /** Re-reads the file, for edits made by another process (`hopgate runner revoke`). */
  async reload(): Promise<void> {
    this.set(await this.read())
  }

  /** Synchronous on purpose: asked on every handshake, answered from memory. */
  isRevoked(runnerId: string, serial?: string): boolean {
    if (this.runners.has(runnerId)) return true
    return serial !== undefined && this.serials.has(serial.replace(/:/g, '').toUpperCase())
  }

  list(): RevocationEntry[] {
    return this.entries.map((e) => ({ ...e }))
  }

  /** Denies every certificate naming `runnerId`, past and future. True if newly revoked. */
  async revoke(runnerId: string, opts: { reason?: string } = {}): Promise<boolean> {
    assertId(runnerId)
    return this.add({ kind: 'runner', value: runnerId, reason: opts.reason })
  }

  /** Denies one certificate (e.g. a leaked key) without banning its runner id. */
  async revokeSerial(serial: string, opts: { reason?: string } = {}): Promise<boolean> {
    return this.add({ kind: 'serial', value: normalizeSerial(serial), reason: opts.reason })
  }

  /** Lifts a runner-id revocation, so the runner can enroll again with a new token. */
  async unrevoke(runnerId: string): Promise<boolean> {
    assertId(runnerId)
    return this.update((entries) => {
      const kept = entries.filter((e) => !(e.kind === 'runner' && e.value === runnerId))
      return kept.length === entries.length ? undefined : kept
    })
  }

  private async add(entry: Omit<RevocationEntry, 'revokedAt'>): Promise<boolean> {
    const revokedAt = wallNow(this.clock)
    return this.update((entries) => {
      if (entries.some((e) => e.kind === entry.kind && e.value === entry.value)) return undefined
      const e: RevocationEntry = { kind: entry.kind, value: entry.value, revokedAt }
      if (entry.reason !== undefined) e.reason = entry.reason.slice(0, 200)
      return [...entries, e]
    })
  }

  /** Read-modify-write under the file lock; `change` returns undefined when nothing changes. */
  private async update(
    change: (entries: RevocationEntry[]) => RevocationEntry[] | undefined,
  ): Promise<boolean> {
    await ensurePrivateDir(pkiPath(this.stateDir, ''))
    return withFileLock(this.path, async () => {
      const current = await this.read()
      const next = change(current)
      if (!next) {
        this.set(current)
        return false
      }
      const body = JSON.stringify({ version: 1, entries: next }, null, 2) + '\n'
      await writeFileAtomic(this.path, body, { mode: 0o600 })
      this.set(next)
      return true
    })
  }

  private async read(): Promise<RevocationEntry[]> {
    const raw = await readJsonFile(this.path)
    if (raw === undefined) return []
    const parsed = FileSchema.safeParse(raw)
    if (!parsed.success) {
      // Failing closed matters here: an unreadable deny list must not read as "nobody revoked".
      throw new HopgateError('HOPGATE_ERR_PKI_STATE_INVALID', `${this.path} has an unknown shape`)
    }
    return parsed.data.entries
  }

  private set(entries: RevocationEntry[]): void {
    this.entries = entries
    this.runners = new Set(entries.filter((e) => e.kind === 'runner').map((e) => e.value))
    this.serials = new Set(entries.filter((e) => e.kind === 'serial').map((e) => e.value))
  }
}
