// The shared RouteStore for many edges: routes, runner records, leases and the edges holding
// sessions to each runner live in Redis; every write is one Lua script (atomic, and it publishes
// its change event in the same step, so events arrive in commit order). Key layout and the CAS
// are in docs/ARCHITECTURE.md "Redis store". Caching and stale-if-error are cached-store.ts.
import type { Clock } from '../../shared/clock.js'
import { HopgateError } from '../../shared/errors.js'
import type { Logger } from '../../shared/log.js'
import { randomUUID } from 'node:crypto'
import { RedisClient, type RedisClientOptions } from './redis-client.js'
import {
  RouteConflictError,
  type ChangeListener,
  type RouteStore,
  type StoreChange,
} from './store.js'
import * as t from './types.js'

export interface RedisStoreOptions {
  client: RedisClient
  /** Judges every lease: a record's lease.expiresAt is clock.now() + the lease key's PTTL. */
  clock: Clock
  /**
   * This edge's id: the only entry this store adds to or removes from a runner's `edges`. Absent
   * (tools, tests): `edges` in writes is ignored.
   */
  edgeId?: string
  /** Unix ms for the informational timestamps. @default Date.now */
  wallClock?: () => number
  logger?: Logger
}

// Shared by every script: ARGV[1] is the key prefix. Keys are built inside the scripts, which
// Redis allows on a standalone server or Sentinel, not on Cluster (docs/LIMITS.md).
const LUA_COMMON = `
local P = ARGV[1]
local function nowMs()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function ms(x) return string.format('%.0f', x) end
local function liveEdges(id, now)
  return redis.call('ZRANGEBYSCORE', P .. 'edges:' .. id, '(' .. ms(now), '+inf')
end
local function snapshot(id, now)
  local f = redis.call('HGETALL', P .. 'runner:' .. id)
  if #f == 0 then return false end
  return {id, f, redis.call('PTTL', P .. 'lease:' .. id), liveEdges(id, now)}
end
local function routing(id, now)
  local rk = P .. 'runner:' .. id
  return (redis.call('HGET', rk, 'draining') or '') .. '|' ..
    (redis.call('HGET', rk, 'directAddress') or '') .. '|' .. table.concat(liveEdges(id, now), ',')
end
-- Each edge writes only its own entry, scored with its own expiry (Redis time), so N edges
-- holding sessions to one runner never overwrite each other.
local function claim(id, edge, how, now, ttl)
  local ek = P .. 'edges:' .. id
  redis.call('ZREMRANGEBYSCORE', ek, '-inf', ms(now))
  if edge == '' then return end
  if how == 'add' then redis.call('ZADD', ek, ms(now + ttl), edge)
  elseif how == 'drop' then redis.call('ZREM', ek, edge)
  elseif how == 'renew' then redis.call('ZADD', ek, 'XX', ms(now + ttl), edge) end
end
local function publish(chan, origin, body)
  redis.call('PUBLISH', chan, '{"o":' .. cjson.encode(origin) .. ',' .. body .. '}')
end
`

// ARGV: prefix, project, expected epoch ('' = none), route JSON without '{' and epoch, channel,
// origin. Returns {1, route} or {0, current route or nil}.
const LUA_CAS =
  LUA_COMMON +
  `
local hk = P .. 'routes'
local cur = redis.call('HGET', hk, ARGV[2])
local epoch = 0
if cur then epoch = cjson.decode(cur).epoch end
local ok
if ARGV[3] == '' then ok = not cur else ok = (cur and epoch == tonumber(ARGV[3])) end
if not ok then return {0, cur} end
local route = '{"epoch":' .. ms(epoch + 1) .. ',' .. ARGV[4]
redis.call('HSET', hk, ARGV[2], route)
publish(ARGV[5], ARGV[6], '"k":"route","r":' .. route)
return {1, route}
`

// ARGV: prefix, id, ttl ms, edge id, claim, wall ms, channel, origin, field, value, ...
const LUA_PUT =
  LUA_COMMON +
  `
local id, ttl, wall = ARGV[2], tonumber(ARGV[3]), ARGV[6]
local rk = P .. 'runner:' .. id
local reg = redis.call('HGET', rk, 'registeredAt') or wall
redis.call('DEL', rk)
redis.call('HSET', rk, 'registeredAt', reg, 'lastHeartbeatAt', wall, unpack(ARGV, 9))
redis.call('SADD', P .. 'runners', id)
redis.call('SET', P .. 'lease:' .. id, '1', 'PX', ttl)
local now = nowMs()
claim(id, ARGV[4], ARGV[5], now, ttl)
local snap = snapshot(id, now)
publish(ARGV[7], ARGV[8], '"k":"runner","s":' .. cjson.encode(snap))
return snap
`

// Same ARGV as LUA_PUT. Nil if the runner is not registered, else {routing changed 1/0, snapshot};
// publishes only a routing change (a lease renewal alone would flood every edge).
const LUA_HEARTBEAT =
  LUA_COMMON +
  `
local id, ttl, wall = ARGV[2], tonumber(ARGV[3]), ARGV[6]
local rk = P .. 'runner:' .. id
if redis.call('EXISTS', rk) == 0 then return false end
local now = nowMs()
local before = routing(id, now)
redis.call('HSET', rk, 'lastHeartbeatAt', wall, unpack(ARGV, 9))
redis.call('SET', P .. 'lease:' .. id, '1', 'PX', ttl)
claim(id, ARGV[4], ARGV[5], now, ttl)
local snap = snapshot(id, now)
if routing(id, now) == before then return {0, snap} end
publish(ARGV[7], ARGV[8], '"k":"runner","s":' .. cjson.encode(snap))
return {1, snap}
`

// ARGV: prefix, id, channel, origin. Returns 1 if the runner existed.
const LUA_REMOVE =
  LUA_COMMON +
  `
local id = ARGV[2]
local existed = redis.call('SREM', P .. 'runners', id)
redis.call('DEL', P .. 'runner:' .. id, P .. 'lease:' .. id, P .. 'edges:' .. id)
if existed == 1 then publish(ARGV[3], ARGV[4], '"k":"runner","gone":' .. cjson.encode(id)) end
return existed
`

// ARGV: prefix, id. One consistent snapshot of record, lease and live edges.
const LUA_GET_RUNNER = LUA_COMMON + `return snapshot(ARGV[2], nowMs())`

// ARGV: prefix. Every registered runner's snapshot.
const LUA_LIST_RUNNERS =
  LUA_COMMON +
  `
local now = nowMs()
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', P .. 'runners')) do
  local s = snapshot(id, now)
  if s then out[#out + 1] = s end
end
return out
`

type Snapshot = [string, string[], number, string[] | Record<string, never>]

interface Scripted {
  hgCas(...args: string[]): Promise<[number, string | null | undefined]>
  hgPut(...args: string[]): Promise<Snapshot>
  hgHeartbeat(...args: string[]): Promise<[number, Snapshot] | null>
  hgRemove(...args: string[]): Promise<number>
  hgGetRunner(...args: string[]): Promise<Snapshot | null>
  hgListRunners(...args: string[]): Promise<Snapshot[]>
}

const SCRIPTS: Array<[keyof Scripted, string, boolean]> = [
  ['hgCas', LUA_CAS, false],
  ['hgPut', LUA_PUT, false],
  ['hgHeartbeat', LUA_HEARTBEAT, false],
  ['hgRemove', LUA_REMOVE, false],
  ['hgGetRunner', LUA_GET_RUNNER, true],
  ['hgListRunners', LUA_LIST_RUNNERS, true],
]

/** Pub/sub channel (unprefixed) on which every route and runner change is published. */
export const ROUTE_CHANNEL = 'changes'

export class RedisStore implements RouteStore {
  /** Tells this instance's own messages apart on the shared channel (it emitted them already). */
  private readonly origin = randomUUID()
  private readonly listeners = new Set<ChangeListener>()
  private readonly wall: () => number
  private readonly redis: Scripted
  private readonly client: RedisClient
  private unsubscribe: (() => void) | undefined
  private ownsClient = false
  private closed = false
  private inFlight = 0
  private idle: Array<() => void> = []

  private constructor(private readonly opts: RedisStoreOptions) {
    this.client = opts.client
    this.wall = opts.wallClock ?? Date.now
    for (const [name, lua, readOnly] of SCRIPTS) {
      if (!(name in opts.client.cmd)) {
        opts.client.cmd.defineCommand(name, { lua, numberOfKeys: 0, readOnly })
      }
    }
    this.redis = opts.client.cmd as unknown as Scripted
  }

  /** A store on a shared client (the client outlives it), subscribed to change events. */
  static async open(opts: RedisStoreOptions): Promise<RedisStore> {
    const store = new RedisStore(opts)
    store.unsubscribe = await opts.client.subscribe(ROUTE_CHANNEL, (m) => store.onMessage(m))
    return store
  }

  /** A store with its own connections, closed by close(). */
  static async connect(
    opts: Omit<RedisStoreOptions, 'client'> & RedisClientOptions,
  ): Promise<RedisStore> {
    const client = await RedisClient.connect(opts)
    try {
      const store = await RedisStore.open({ ...opts, client })
      store.ownsClient = true
      return store
    } catch (err) {
      await client.close()
      throw err
    }
  }

  async getRoute(project: string): Promise<t.Route | undefined> {
    t.assertProjectId(project)
    const raw = await this.call((r) => r.hget(this.client.key('routes'), project))
    return raw ? decodeRoute(raw) : undefined
  }

  async listRoutes(): Promise<t.Route[]> {
    const all = await this.call((r) => r.hgetall(this.client.key('routes')))
    return Object.values(all)
      .map(decodeRoute)
      .sort((a, b) => (a.project < b.project ? -1 : 1))
  }

  async casRoute(project: string, expected: number | null, next: t.RouteUpdate): Promise<t.Route> {
    t.assertProjectId(project)
    t.assertRunnerId(next.runner)
    t.assertRouteState(next.state)
    if (expected !== null && !Number.isSafeInteger(expected)) {
      throw new RouteConflictError(project, expected, await this.getRoute(project))
    }
    // Everything but the epoch is fixed here; the script prepends the epoch it computed.
    const tail = JSON.stringify({
      project,
      runner: next.runner,
      state: next.state,
      updatedAt: this.wall(),
    }).slice(1)
    const [won, raw] = await this.call(() =>
      this.redis.hgCas(
        this.client.prefix,
        project,
        expected === null ? '' : String(expected),
        tail,
        this.channel,
        this.origin,
      ),
    )
    const current = raw ? decodeRoute(raw) : undefined
    if (won !== 1 || !current) throw new RouteConflictError(project, expected, current)
    this.emit({ kind: 'route', project, route: current })
    return current
  }

  async putRunner(runnerId: string, info: t.RunnerInfo, ttlMs: number): Promise<t.RunnerRecord> {
    t.assertRunnerId(runnerId)
    if (!info.capacity || !info.storage) {
      throw new HopgateError('HOPGATE_ERR_RUNNER_INVALID', 'registration without capacity')
    }
    t.assertRunnerPatch(info)
    t.assertLeaseTtl(ttlMs)
    const fields = encodeFields({ projects: 0, draining: false, ...info })
    const snap = await this.call(() =>
      this.redis.hgPut(
        ...this.writeArgs(runnerId, ttlMs, this.claimOf(info.edges, 'drop'), fields),
      ),
    )
    const rec = decodeRunner(snap, this.opts.clock.now())
    this.emit({ kind: 'runner', runnerId, runner: rec })
    return rec
  }

  async heartbeat(runnerId: string, patch: t.RunnerPatch, ttlMs: number): Promise<t.RunnerRecord> {
    t.assertRunnerId(runnerId)
    t.assertRunnerPatch(patch)
    t.assertLeaseTtl(ttlMs)
    const claim = this.claimOf(patch.edges, 'renew')
    const args = this.writeArgs(runnerId, ttlMs, claim, encodeFields(patch))
    const reply = await this.call(() => this.redis.hgHeartbeat(...args))
    if (!reply) throw new HopgateError('HOPGATE_ERR_RUNNER_UNKNOWN', runnerId)
    const rec = decodeRunner(reply[1], this.opts.clock.now())
    if (reply[0] === 1) this.emit({ kind: 'runner', runnerId, runner: rec })
    return rec
  }

  async getRunner(runnerId: string): Promise<t.RunnerRecord | undefined> {
    t.assertRunnerId(runnerId)
    const snap = await this.call(() => this.redis.hgGetRunner(this.client.prefix, runnerId))
    return snap ? decodeRunner(snap, this.opts.clock.now()) : undefined
  }

  async listRunners(): Promise<t.RunnerRecord[]> {
    const snaps = await this.call(() => this.redis.hgListRunners(this.client.prefix))
    const now = this.opts.clock.now()
    return snaps.map((s) => decodeRunner(s, now)).sort((a, b) => (a.runnerId < b.runnerId ? -1 : 1))
  }

  async removeRunner(runnerId: string): Promise<boolean> {
    t.assertRunnerId(runnerId)
    const existed = await this.call(() =>
      this.redis.hgRemove(this.client.prefix, runnerId, this.channel, this.origin),
    )
    if (existed === 1) this.emit({ kind: 'runner', runnerId, runner: null })
    return existed === 1
  }

  onChange(listener: ChangeListener): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /** Called when change events may have been missed (Redis reconnected): drop what you cached. */
  onResync(listener: () => void): () => void {
    return this.client.onResync(listener)
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    if (this.inFlight > 0) await new Promise<void>((r) => this.idle.push(r))
    this.unsubscribe?.()
    this.listeners.clear()
    if (this.ownsClient) await this.client.close()
  }

  private get channel(): string {
    return this.client.key(ROUTE_CHANNEL)
  }

  private claimOf(edges: readonly string[] | undefined, absent: 'drop' | 'renew'): string {
    const own = this.opts.edgeId
    if (own === undefined) return ''
    if (edges === undefined) return absent
    return edges.includes(own) ? 'add' : 'drop'
  }

  private writeArgs(id: string, ttlMs: number, claim: string, fields: string[]): string[] {
    return [
      this.client.prefix,
      id,
      String(Math.max(1, Math.ceil(ttlMs))),
      this.opts.edgeId ?? '',
      claim,
      String(this.wall()),
      this.channel,
      this.origin,
      ...fields,
    ]
  }

  private async call<T>(fn: (redis: import('ioredis').Redis) => Promise<T>): Promise<T> {
    if (this.closed) throw new HopgateError('HOPGATE_ERR_STORE_CLOSED')
    this.inFlight++
    try {
      return await this.client.run(fn)
    } finally {
      if (--this.inFlight === 0) for (const wake of this.idle.splice(0)) wake()
    }
  }

  private onMessage(message: string): void {
    let m: { o?: string; k?: string; r?: t.Route; s?: Snapshot; gone?: string }
    try {
      m = JSON.parse(message) as typeof m
    } catch {
      return
    }
    if (m.o === this.origin || this.closed) return
    try {
      if (m.k === 'route' && m.r) {
        const route = decodeRoute(JSON.stringify(m.r))
        this.emit({ kind: 'route', project: route.project, route })
      } else if (m.k === 'runner' && m.s) {
        // The lease is measured from when the message arrives: it was published with the write.
        const runner = decodeRunner(m.s, this.opts.clock.now())
        this.emit({ kind: 'runner', runnerId: runner.runnerId, runner })
      } else if (m.k === 'runner' && typeof m.gone === 'string') {
        this.emit({ kind: 'runner', runnerId: m.gone, runner: null })
      }
    } catch (err) {
      this.opts.logger?.warn({ err }, 'unreadable route change message')
    }
  }

  private emit(change: StoreChange): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(change)
      } catch (err) {
        // A subscriber's bug must not undo or stall a change that is already durable.
        if (this.opts.logger) this.opts.logger.error({ err }, 'route store listener threw')
        else process.emitWarning(err as Error)
      }
    }
  }
}

function decodeRoute(raw: string): t.Route {
  const r = JSON.parse(raw) as t.Route
  t.assertProjectId(r.project)
  return Object.freeze({
    project: r.project,
    runner: r.runner,
    epoch: r.epoch,
    state: r.state,
    updatedAt: r.updatedAt,
  })
}

/** Hash fields of a runner record: nested objects as JSON, booleans as '1'/'0'. */
function encodeFields(p: t.RunnerPatch): string[] {
  const out: string[] = []
  if (p.capacity) out.push('capacity', JSON.stringify(p.capacity))
  if (p.storage) out.push('storage', JSON.stringify(p.storage))
  if (p.projects !== undefined) out.push('projects', String(p.projects))
  if (p.directAddress !== undefined) out.push('directAddress', p.directAddress)
  if (p.draining !== undefined) out.push('draining', p.draining ? '1' : '0')
  return out
}

function decodeRunner(snap: Snapshot, now: number): t.RunnerRecord {
  const [runnerId, flat, pttl, edges] = snap
  const f = new Map<string, string>()
  for (let i = 0; i + 1 < flat.length; i += 2) f.set(flat[i]!, flat[i + 1]!)
  const directAddress = f.get('directAddress')
  return t.freezeRunner({
    runnerId,
    // PTTL -2: the lease key expired (or was never set): expired as of now, by our Clock.
    lease: { expiresAt: pttl > 0 ? now + pttl : now },
    capacity: JSON.parse(f.get('capacity') ?? 'null') as t.RunnerCapacity,
    storage: JSON.parse(f.get('storage') ?? 'null') as t.RunnerStorage,
    projects: Number(f.get('projects') ?? 0),
    ...(directAddress !== undefined && { directAddress }),
    // cjson turns an empty Lua table into {}, hence the Array check.
    edges: Array.isArray(edges) ? [...edges].sort() : [],
    draining: f.get('draining') === '1',
    registeredAt: Number(f.get('registeredAt')),
    lastHeartbeatAt: Number(f.get('lastHeartbeatAt')),
  })
}
