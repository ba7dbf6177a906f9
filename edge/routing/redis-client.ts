// One edge's connections to Redis, shared by every Redis-backed store (routes, access, tokens,
// revocations): a command connection that fails fast (no offline queue, a short command timeout,
// a breaker that refuses at once while Redis is known down) and one subscriber connection that
// multiplexes the pub/sub channels. It maps ioredis failures to typed errors; no store policy.
import { Redis, ReplyError } from 'ioredis'
import { HopgateError } from '../../shared/errors.js'
import type { Logger } from '../../shared/log.js'

export interface RedisClientOptions {
  /** `redis://[user:pass@]host:port[/db]` (or `rediss://` for TLS). */
  url: string
  /** Prefix of every key and channel, so several clusters or tests share one server. @default 'hopgate:' */
  keyPrefix?: string
  /** Longest a command waits for its reply, ms; then it fails and the breaker opens. @default 300 */
  commandTimeoutMs?: number
  /** While the breaker is open, how often a PING probes Redis, ms. @default 250 */
  probeIntervalMs?: number
  /** Longest a (re)connect attempt may take, ms. @default 1000 */
  connectTimeoutMs?: number
  logger?: Logger
}

export const DEFAULT_KEY_PREFIX = 'hopgate:'

/** The only failures that mean "Redis answered, and said no" rather than "Redis is away". */
function isReply(err: unknown): boolean {
  return err instanceof (ReplyError as new () => Error)
}

export class RedisClient {
  readonly prefix: string
  readonly url: string
  /** The command connection; use through run() so failures are typed and trip the breaker. */
  readonly cmd: Redis
  private readonly sub: Redis
  private readonly handlers = new Map<string, Set<(message: string) => void>>()
  private readonly resyncListeners = new Set<() => void>()
  private open = false
  private down = false
  private probeTimer: NodeJS.Timeout | undefined
  private closed = false
  private readonly probeIntervalMs: number

  private constructor(private readonly opts: RedisClientOptions) {
    this.url = opts.url
    this.prefix = opts.keyPrefix ?? DEFAULT_KEY_PREFIX
    this.probeIntervalMs = opts.probeIntervalMs ?? 250
    const common = {
      lazyConnect: true,
      // Fail fast: a command issued while disconnected rejects at once instead of queueing, and a
      // command on a wedged connection rejects after commandTimeout; nothing waits unbounded.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      connectTimeout: opts.connectTimeoutMs ?? 1000,
      retryStrategy: (times: number) => Math.min(50 * times, 500),
    }
    this.cmd = new Redis(opts.url, { ...common, commandTimeout: opts.commandTimeoutMs ?? 300 })
    this.sub = new Redis(opts.url, { ...common, autoResubscribe: true })
    const onError = (err: unknown): void => {
      // ioredis reports every failed reconnect here; the breaker already tells callers.
      opts.logger?.debug({ err }, 'redis connection error')
    }
    this.cmd.on('error', onError)
    this.sub.on('error', onError)
    this.sub.on('message', (channel: string, message: string) => {
      for (const h of [...(this.handlers.get(channel) ?? [])]) h(message)
    })
    // A re-established subscriber may have missed messages while it was away.
    this.sub.on('ready', () => {
      if (this.open) this.resync()
    })
  }

  /** Connects both connections; rejects with HOPGATE_ERR_STORE_UNAVAILABLE if Redis is away. */
  static async connect(opts: RedisClientOptions): Promise<RedisClient> {
    const client = new RedisClient(opts)
    try {
      await Promise.all([client.cmd.connect(), client.sub.connect()])
    } catch (err) {
      client.cmd.disconnect()
      client.sub.disconnect()
      throw new HopgateError('HOPGATE_ERR_STORE_UNAVAILABLE', `redis at ${redactUrl(opts.url)}`, {
        cause: err,
      })
    }
    client.open = true
    return client
  }

  /** The prefixed key (or channel) name. */
  key(name: string): string {
    return this.prefix + name
  }

  /** False while the breaker is open (Redis failed and no probe has succeeded since). */
  get available(): boolean {
    return !this.down && this.cmd.status === 'ready'
  }

  /**
   * Runs commands on the command connection. Refuses at once with HOPGATE_ERR_STORE_UNAVAILABLE
   * while Redis is known down; a failure that is not a Redis reply (timeout, refused, reset)
   * opens the breaker and rejects the same way; so does a Redis error reply, without the breaker.
   */
  async run<T>(fn: (redis: Redis) => Promise<T>): Promise<T> {
    if (this.closed) throw new HopgateError('HOPGATE_ERR_STORE_CLOSED', 'redis client')
    if (!this.available) {
      this.trip()
      throw new HopgateError('HOPGATE_ERR_STORE_UNAVAILABLE', 'redis is down')
    }
    try {
      return await fn(this.cmd)
    } catch (err) {
      if (err instanceof HopgateError) throw err
      // An error reply (LOADING, READONLY, OOM...) is Redis refusing, not Redis gone: typed the
      // same for callers, but the connection is fine, so the breaker stays closed.
      if (isReply(err)) {
        throw new HopgateError('HOPGATE_ERR_STORE_UNAVAILABLE', 'redis refused', { cause: err })
      }
      this.trip()
      throw new HopgateError('HOPGATE_ERR_STORE_UNAVAILABLE', 'redis', { cause: err })
    }
  }

  /** Delivers each message on `channel` (unprefixed name) to `handler`; returns unsubscribe. */
  async subscribe(channel: string, handler: (message: string) => void): Promise<() => void> {
    const name = this.key(channel)
    let set = this.handlers.get(name)
    if (!set) {
      this.handlers.set(name, (set = new Set()))
      try {
        await this.sub.subscribe(name)
      } catch (err) {
        this.handlers.delete(name)
        throw new HopgateError('HOPGATE_ERR_STORE_UNAVAILABLE', `subscribe ${name}`, { cause: err })
      }
    }
    set.add(handler)
    return () => {
      set.delete(handler)
    }
  }

  /** Called when messages may have been missed (reconnect, breaker closing): drop caches. */
  onResync(listener: () => void): () => void {
    this.resyncListeners.add(listener)
    return () => this.resyncListeners.delete(listener)
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.open = false
    clearTimeout(this.probeTimer)
    // quit() waits for the server; a dead server must not stall shutdown.
    this.cmd.disconnect()
    this.sub.disconnect()
  }

  private resync(): void {
    for (const l of [...this.resyncListeners]) l()
  }

  // Opens the breaker and probes until a PING succeeds. Pacing is real time (setTimeout), not the
  // injected Clock: it is I/O retry, and a test's ManualClock must not stall recovery.
  private trip(): void {
    if (this.closed) return
    this.down = true
    if (this.probeTimer) return
    const probe = (): void => {
      this.probeTimer = setTimeout(() => {
        if (this.closed) return
        const attempt =
          this.cmd.status === 'ready' ? this.cmd.ping() : Promise.reject(new Error('not ready'))
        attempt.then(
          () => {
            this.probeTimer = undefined
            this.down = false
            this.resync()
          },
          () => probe(),
        )
      }, this.probeIntervalMs)
      this.probeTimer.unref()
    }
    probe()
  }
}

/** The URL without its password, for messages and logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url)
    if (u.password) u.password = '***'
    return u.toString()
  } catch {
    return 'redis://?'
  }
}
