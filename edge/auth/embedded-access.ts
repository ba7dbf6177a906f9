// The embedded AccessStore: collaborators and SSH keys in memory, persisted to
// `<stateDir>/access.json` (atomic, 0600) after each change and before the change resolves. One
// edge process owns the file; the CLI changes it through the admin API, never by writing it.
// Id rules for accounts and fingerprints live here too (account.ts would be one function).
import { join } from 'node:path'
import { z } from 'zod'
import { HopgateError } from '../../shared/errors.js'
import { readJsonFile, writeFileAtomic, ensurePrivateDir } from '../../certs/state.js'
import { isProjectId, assertProjectId } from '../routing/types.js'
import type { AccessChange, AccessStore, AccountId, SshKeyRecord } from './access-store.js'

export const ACCESS_FILE = 'access.json'
const FORMAT = 'hopgate.access'
const VERSION = 1

const ACCOUNT_RE = /^[a-z0-9][a-z0-9._@-]{0,63}$/
const FINGERPRINT_RE = /^SHA256:[A-Za-z0-9+/]{43}$/

export function isAccountId(value: unknown): value is AccountId {
  return typeof value === 'string' && ACCOUNT_RE.test(value)
}

export function assertAccountId(value: unknown): asserts value is AccountId {
  if (!isAccountId(value)) {
    throw new HopgateError('HOPGATE_ERR_ACCESS_ACCOUNT_INVALID', JSON.stringify(value))
  }
}

export function isSshFingerprint(value: unknown): value is string {
  return typeof value === 'string' && FINGERPRINT_RE.test(value)
}

const keySchema = z.object({
  account: z.string().refine(isAccountId),
  fingerprint: z.string().refine(isSshFingerprint),
  type: z.string().min(1).max(64),
  publicKey: z.string().min(1).max(16384),
  comment: z.string().max(1024),
  addedAt: z.number(),
})
const fileSchema = z.object({
  format: z.literal(FORMAT),
  version: z.literal(VERSION),
  acl: z.record(z.string().refine(isProjectId), z.array(z.string().refine(isAccountId))),
  sshKeys: z.array(keySchema),
})

export class EmbeddedAccessStore implements AccessStore {
  private readonly acl = new Map<string, Set<AccountId>>()
  private readonly keys = new Map<string, SshKeyRecord>()
  private readonly listeners = new Set<(c: AccessChange) => void>()
  private writes: Promise<void> = Promise.resolve()
  private closed = false

  private constructor(
    private readonly path: string,
    private readonly now: () => number,
  ) {}

  static async open(opts: { stateDir: string; now?: () => number }): Promise<EmbeddedAccessStore> {
    await ensurePrivateDir(opts.stateDir)
    const store = new EmbeddedAccessStore(join(opts.stateDir, ACCESS_FILE), opts.now ?? Date.now)
    const raw = await readJsonFile(store.path)
    if (raw !== undefined) {
      const parsed = fileSchema.safeParse(raw)
      if (!parsed.success) {
        throw new HopgateError(
          'HOPGATE_ERR_STORE_CORRUPT',
          `${store.path}: ${parsed.error.message}`,
        )
      }
      for (const [project, accounts] of Object.entries(parsed.data.acl)) {
        store.acl.set(project, new Set(accounts))
      }
      for (const k of parsed.data.sshKeys) store.keys.set(k.fingerprint, Object.freeze(k))
    }
    return store
  }

  async isCollaborator(project: string, account: AccountId): Promise<boolean> {
    this.assertOpen()
    return this.acl.get(project)?.has(account) ?? false
  }

  async grant(project: string, account: AccountId): Promise<boolean> {
    this.assertOpen()
    assertProjectId(project)
    assertAccountId(account)
    let set = this.acl.get(project)
    if (set?.has(account)) return false
    if (!set) this.acl.set(project, (set = new Set()))
    set.add(account)
    await this.commit({ kind: 'acl', project, account })
    return true
  }

  async revoke(project: string, account: AccountId): Promise<boolean> {
    this.assertOpen()
    const set = this.acl.get(project)
    if (!set?.delete(account)) return false
    if (set.size === 0) this.acl.delete(project)
    await this.commit({ kind: 'acl', project, account })
    return true
  }

  async collaborators(project: string): Promise<AccountId[]> {
    this.assertOpen()
    return [...(this.acl.get(project) ?? [])].sort()
  }

  async projectsOf(account: AccountId): Promise<string[]> {
    this.assertOpen()
    const out: string[] = []
    for (const [project, set] of this.acl) if (set.has(account)) out.push(project)
    return out.sort()
  }

  async addSshKey(record: Omit<SshKeyRecord, 'addedAt'>): Promise<SshKeyRecord> {
    this.assertOpen()
    assertAccountId(record.account)
    if (!isSshFingerprint(record.fingerprint) || !record.type || !record.publicKey) {
      throw new HopgateError('HOPGATE_ERR_SSH_KEY_INVALID', record.fingerprint)
    }
    const have = this.keys.get(record.fingerprint)
    if (have && have.account !== record.account) {
      throw new HopgateError('HOPGATE_ERR_SSH_KEY_TAKEN', record.fingerprint)
    }
    if (have) return have
    const full = Object.freeze({ ...record, addedAt: this.now() })
    this.keys.set(full.fingerprint, full)
    await this.commit({ kind: 'ssh-key', account: full.account, fingerprint: full.fingerprint })
    return full
  }

  async removeSshKey(account: AccountId, fingerprint: string): Promise<boolean> {
    this.assertOpen()
    if (this.keys.get(fingerprint)?.account !== account) return false
    this.keys.delete(fingerprint)
    await this.commit({ kind: 'ssh-key', account, fingerprint })
    return true
  }

  async listSshKeys(account: AccountId): Promise<SshKeyRecord[]> {
    this.assertOpen()
    const out = [...this.keys.values()].filter((k) => k.account === account)
    return out.sort((a, b) => a.addedAt - b.addedAt)
  }

  async findSshKey(fingerprint: string): Promise<SshKeyRecord | undefined> {
    this.assertOpen()
    return this.keys.get(fingerprint)
  }

  onChange(listener: (change: AccessChange) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  async close(): Promise<void> {
    this.closed = true
    await this.writes
  }

  // Writes are chained so the file always reflects a prefix of the changes, in order; a change is
  // announced only once it is on disk.
  private commit(change: AccessChange): Promise<void> {
    const text = this.serialize()
    const write = this.writes.then(() => writeFileAtomic(this.path, text))
    this.writes = write.catch(() => undefined)
    return write.then(
      () => {
        for (const l of this.listeners) l(change)
      },
      (err: unknown) => {
        throw new HopgateError('HOPGATE_ERR_STORE_IO', this.path, { cause: err })
      },
    )
  }

  private serialize(): string {
    const acl: Record<string, string[]> = {}
    for (const p of [...this.acl.keys()].sort()) acl[p] = [...this.acl.get(p)!].sort()
    const sshKeys = [...this.keys.values()].sort((a, b) =>
      a.fingerprint.localeCompare(b.fingerprint),
    )
    return JSON.stringify({ format: FORMAT, version: VERSION, acl, sshKeys }, null, 2) + '\n'
  }

  private assertOpen(): void {
    if (this.closed) throw new HopgateError('HOPGATE_ERR_STORE_CLOSED', 'access store')
  }
}
