// The AccessStore in Redis, shared by every edge: collaborators as two sets per side (project ->
// accounts, account -> projects), SSH keys as one JSON record per fingerprint plus a set per
// account. Each change is one Lua script that also publishes it, so every edge's onChange fires.
// Id rules and the refusals are the embedded store's (embedded-access.ts).
import { randomUUID } from 'node:crypto'
import { HopgateError } from '../../shared/errors.js'
import type { RedisClient } from '../routing/redis-client.js'
import { assertProjectId } from '../routing/types.js'
import type { AccessChange, AccessStore, AccountId, SshKeyRecord } from './access-store.js'
import { assertAccountId, isAccountId, isSshFingerprint } from './embedded-access.js'

/** Pub/sub channel (unprefixed) of access changes. */
export const ACCESS_CHANNEL = 'access'

const LUA_HEAD = `
local P = ARGV[1]
local function publish(body)
  redis.call('PUBLISH', ARGV[2], '{"o":' .. cjson.encode(ARGV[3]) .. ',' .. body .. '}')
end
`
// ARGV: prefix, channel, origin, project, account. 1 if it changed anything.
const LUA_GRANT =
  LUA_HEAD +
  `
if redis.call('SADD', P .. 'acl:' .. ARGV[4], ARGV[5]) == 0 then return 0 end
redis.call('SADD', P .. 'account-projects:' .. ARGV[5], ARGV[4])
publish('"c":' .. cjson.encode({kind = 'acl', project = ARGV[4], account = ARGV[5]}))
return 1
`
const LUA_REVOKE =
  LUA_HEAD +
  `
if redis.call('SREM', P .. 'acl:' .. ARGV[4], ARGV[5]) == 0 then return 0 end
redis.call('SREM', P .. 'account-projects:' .. ARGV[5], ARGV[4])
publish('"c":' .. cjson.encode({kind = 'acl', project = ARGV[4], account = ARGV[5]}))
return 1
`
// ARGV: prefix, channel, origin, fingerprint, account, record JSON. Returns {status, record}.
const LUA_ADD_KEY =
  LUA_HEAD +
  `
local k = P .. 'ssh-key:' .. ARGV[4]
local have = redis.call('GET', k)
if have then
  if cjson.decode(have).account ~= ARGV[5] then return {'taken', have} end
  return {'kept', have}
end
redis.call('SET', k, ARGV[6])
redis.call('SADD', P .. 'account-keys:' .. ARGV[5], ARGV[4])
publish('"c":' .. cjson.encode({kind = 'ssh-key', account = ARGV[5], fingerprint = ARGV[4]}))
return {'added', ARGV[6]}
`
// ARGV: prefix, channel, origin, fingerprint, account. 1 if removed.
const LUA_REMOVE_KEY =
  LUA_HEAD +
  `
local k = P .. 'ssh-key:' .. ARGV[4]
local have = redis.call('GET', k)
if not have or cjson.decode(have).account ~= ARGV[5] then return 0 end
redis.call('DEL', k)
redis.call('SREM', P .. 'account-keys:' .. ARGV[5], ARGV[4])
publish('"c":' .. cjson.encode({kind = 'ssh-key', account = ARGV[5], fingerprint = ARGV[4]}))
return 1
`

interface Scripted {
  hgAclGrant(...args: string[]): Promise<number>
  hgAclRevoke(...args: string[]): Promise<number>
  hgKeyAdd(...args: string[]): Promise<[string, string]>
  hgKeyRemove(...args: string[]): Promise<number>
}

export class RedisAccessStore implements AccessStore {
  private readonly origin = randomUUID()
  private readonly listeners = new Set<(c: AccessChange) => void>()
  private readonly redis: Scripted
  private unsubscribe: (() => void) | undefined
  private closed = false

  private constructor(
    private readonly client: RedisClient,
    private readonly now: () => number,
  ) {
    const scripts: Array<[keyof Scripted, string]> = [
      ['hgAclGrant', LUA_GRANT],
      ['hgAclRevoke', LUA_REVOKE],
      ['hgKeyAdd', LUA_ADD_KEY],
      ['hgKeyRemove', LUA_REMOVE_KEY],
    ]
    for (const [name, lua] of scripts) {
      if (!(name in client.cmd)) client.cmd.defineCommand(name, { lua, numberOfKeys: 0 })
    }
    this.redis = client.cmd as unknown as Scripted
  }

  /** A store on a shared client (closing the store leaves the client open). */
  static async open(opts: { client: RedisClient; now?: () => number }): Promise<RedisAccessStore> {
    const store = new RedisAccessStore(opts.client, opts.now ?? Date.now)
    store.unsubscribe = await opts.client.subscribe(ACCESS_CHANNEL, (m) => store.onMessage(m))
    return store
  }

  async isCollaborator(project: string, account: AccountId): Promise<boolean> {
    return (await this.run((r) => r.sismember(this.key('acl:', project), account))) === 1
  }

  async grant(project: string, account: AccountId): Promise<boolean> {
    assertProjectId(project)
    assertAccountId(account)
    const changed = await this.run(() => this.redis.hgAclGrant(...this.args(project, account)))
    if (changed === 1) this.emit({ kind: 'acl', project, account })
    return changed === 1
  }

  async revoke(project: string, account: AccountId): Promise<boolean> {
    if (!isAccountId(account)) return false
    assertProjectId(project)
    const changed = await this.run(() => this.redis.hgAclRevoke(...this.args(project, account)))
    if (changed === 1) this.emit({ kind: 'acl', project, account })
    return changed === 1
  }

  async collaborators(project: string): Promise<AccountId[]> {
    return (await this.run((r) => r.smembers(this.key('acl:', project)))).sort()
  }

  async projectsOf(account: AccountId): Promise<string[]> {
    return (await this.run((r) => r.smembers(this.key('account-projects:', account)))).sort()
  }

  async addSshKey(record: Omit<SshKeyRecord, 'addedAt'>): Promise<SshKeyRecord> {
    assertAccountId(record.account)
    if (!isSshFingerprint(record.fingerprint) || !record.type || !record.publicKey) {
      throw new HopgateError('HOPGATE_ERR_SSH_KEY_INVALID', record.fingerprint)
    }
    const full: SshKeyRecord = { ...record, addedAt: this.now() }
    const [status, raw] = await this.run(() =>
      this.redis.hgKeyAdd(...this.args(record.fingerprint, record.account), JSON.stringify(full)),
    )
    if (status === 'taken') throw new HopgateError('HOPGATE_ERR_SSH_KEY_TAKEN', record.fingerprint)
    if (status === 'added') {
      this.emit({ kind: 'ssh-key', account: full.account, fingerprint: full.fingerprint })
    }
    return decodeKey(raw)
  }

  async removeSshKey(account: AccountId, fingerprint: string): Promise<boolean> {
    if (!isSshFingerprint(fingerprint)) return false
    const removed = await this.run(() => this.redis.hgKeyRemove(...this.args(fingerprint, account)))
    if (removed === 1) this.emit({ kind: 'ssh-key', account, fingerprint })
    return removed === 1
  }

  async listSshKeys(account: AccountId): Promise<SshKeyRecord[]> {
    const fps = await this.run((r) => r.smembers(this.key('account-keys:', account)))
    if (fps.length === 0) return []
    const raws = await this.run((r) => r.mget(...fps.map((fp) => this.key('ssh-key:', fp))))
    return raws
      .flatMap((raw) => (raw ? [decodeKey(raw)] : []))
      .filter((k) => k.account === account)
      .sort((a, b) => a.addedAt - b.addedAt)
  }

  async findSshKey(fingerprint: string): Promise<SshKeyRecord | undefined> {
    if (!isSshFingerprint(fingerprint)) return undefined
    const raw = await this.run((r) => r.get(this.key('ssh-key:', fingerprint)))
    return raw ? decodeKey(raw) : undefined
  }

  onChange(listener: (change: AccessChange) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  async close(): Promise<void> {
    this.closed = true
    this.unsubscribe?.()
    this.listeners.clear()
  }

  private key(kind: string, id: string): string {
    return this.client.key(kind + id)
  }

  private args(a: string, b: string): string[] {
    return [this.client.prefix, this.client.key(ACCESS_CHANNEL), this.origin, a, b]
  }

  private run<T>(fn: (redis: RedisClient['cmd']) => Promise<T>): Promise<T> {
    if (this.closed) {
      return Promise.reject(new HopgateError('HOPGATE_ERR_STORE_CLOSED', 'access store'))
    }
    return this.client.run(fn)
  }

  private onMessage(message: string): void {
    let m: { o?: string; c?: AccessChange }
    try {
      m = JSON.parse(message) as typeof m
    } catch {
      return
    }
    if (m.o !== this.origin && m.c && !this.closed) this.emit(m.c)
  }

  private emit(change: AccessChange): void {
    for (const l of [...this.listeners]) {
      try {
        l(change)
      } catch (err) {
        process.emitWarning(err as Error)
      }
    }
  }
}

function decodeKey(raw: string): SshKeyRecord {
  return Object.freeze(JSON.parse(raw) as SshKeyRecord)
}
