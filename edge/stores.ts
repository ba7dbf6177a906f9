// Opens the shared state an edge works from, by store choice: `embedded` (files in the state
// directory; one edge) or `redis://host:port[/db]` (Redis, shared by many edges; routes behind
// CachedStore). One factory, so startEdge and the multi-edge tooling open the same set the same way.
import type { Clock } from '../shared/clock.js'
import { systemClock } from '../shared/clock.js'
import { HopgateError } from '../shared/errors.js'
import type { Logger } from '../shared/log.js'
import { FileTokenStore, type TokenStore } from '../certs/tokens.js'
import { RevocationList, type Revocations } from '../certs/revocation.js'
import { RedisTokenStore } from '../certs/redis-tokens.js'
import { RedisRevocations } from '../certs/redis-revocation.js'
import type { AccessStore } from './auth/access-store.js'
import { EmbeddedAccessStore } from './auth/embedded-access.js'
import { RedisAccessStore } from './auth/redis-access.js'
import { CachedStore, type CachedStoreOptions } from './routing/cached-store.js'
import { EmbeddedStore } from './routing/embedded-store.js'
import { DEFAULT_KEY_PREFIX, RedisClient, redactUrl } from './routing/redis-client.js'
import { RedisStore } from './routing/redis-store.js'
import type { RouteStore } from './routing/store.js'

export type StoreChoice = { kind: 'embedded' } | { kind: 'redis'; url: string }

/** `embedded` or a `redis://` / `rediss://` URL; anything else is HOPGATE_ERR_CONFIG_INVALID. */
export function parseStoreChoice(value: string): StoreChoice {
  const v = value.trim()
  if (v === '' || v === 'embedded') return { kind: 'embedded' }
  let u: URL | undefined
  try {
    u = new URL(v)
  } catch {
    u = undefined
  }
  if (!u || !['redis:', 'rediss:'].includes(u.protocol) || !u.hostname) {
    throw new HopgateError(
      'HOPGATE_ERR_CONFIG_INVALID',
      `store: want "embedded" or redis://host:port[/db], got ${JSON.stringify(redactUrl(v))}`,
    )
  }
  const db = u.pathname.replace(/^\//, '')
  if (db !== '' && !/^\d{1,2}$/.test(db)) {
    throw new HopgateError('HOPGATE_ERR_CONFIG_INVALID', `store: database "${db}" is not 0-99`)
  }
  return { kind: 'redis', url: v }
}

export interface OpenStoresOptions {
  /** `embedded` (default) or `redis://host:port[/db]`. */
  store?: string
  stateDir: string
  /** This edge's id: the entry it keeps in each runner's `edges` (Redis). */
  edgeId: string
  /** Judges leases and cache ages. @default systemClock */
  clock?: Clock
  /** Redis key and channel prefix; edges of one cluster must share it. @default 'hopgate:' */
  keyPrefix?: string
  /** Redis command timeout, ms. @default 300 */
  commandTimeoutMs?: number
  /** Route cache tuning (Redis): ttlMs 5000, staleIfErrorMs 60000, readTimeoutMs 400. */
  cache?: Pick<CachedStoreOptions, 'ttlMs' | 'staleIfErrorMs' | 'readTimeoutMs'>
  logger?: Logger
}

export interface EdgeStores {
  readonly choice: StoreChoice
  /** Routes and runners; with Redis a CachedStore over a RedisStore. */
  readonly routes: RouteStore
  readonly access: AccessStore
  readonly tokens: TokenStore
  readonly revocation: Revocations
  /**
   * Calls `listener` at once when any edge revokes a runner (Redis); the embedded list has no
   * push and is re-read on the edge's heartbeat interval instead. Returns unsubscribe.
   */
  onRevoked(listener: (runnerId: string) => void): () => void
  /** The Redis connections (Redis only), e.g. for an edge registry sharing them. */
  readonly redis?: RedisClient
  /** Closes every store, then the connections. */
  close(): Promise<void>
}

export async function openStores(opts: OpenStoresOptions): Promise<EdgeStores> {
  const choice = parseStoreChoice(opts.store ?? 'embedded')
  const clock = opts.clock ?? systemClock
  if (choice.kind === 'embedded') {
    const routes = await EmbeddedStore.open({
      stateDir: opts.stateDir,
      clock,
      ...(opts.logger ? { logger: opts.logger } : {}),
    })
    const access = await EmbeddedAccessStore.open({ stateDir: opts.stateDir })
    return {
      choice,
      routes,
      access,
      tokens: new FileTokenStore(opts.stateDir),
      revocation: await RevocationList.open(opts.stateDir),
      onRevoked: () => () => {},
      close: async () => {
        await routes.close()
        await access.close()
      },
    }
  }
  const client = await RedisClient.connect({
    url: choice.url,
    keyPrefix: opts.keyPrefix ?? DEFAULT_KEY_PREFIX,
    ...(opts.commandTimeoutMs !== undefined ? { commandTimeoutMs: opts.commandTimeoutMs } : {}),
    ...(opts.logger ? { logger: opts.logger } : {}),
  })
  try {
    const inner = await RedisStore.open({
      client,
      clock,
      edgeId: opts.edgeId,
      ...(opts.logger ? { logger: opts.logger } : {}),
    })
    const routes = new CachedStore({ inner, clock, ...opts.cache })
    const access = await RedisAccessStore.open({ client })
    const revocation = await RedisRevocations.open({ client })
    return {
      choice,
      routes,
      access,
      tokens: new RedisTokenStore(client),
      revocation,
      onRevoked: (listener) => revocation.onRevoked(listener),
      redis: client,
      close: async () => {
        await routes.close()
        await access.close()
        revocation.close()
        await client.close()
      },
    }
  } catch (err) {
    await client.close()
    throw err
  }
}
