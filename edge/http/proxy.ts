// Forwards one authorised HTTP request to its project: resolves the route for that request alone,
// takes an upstream connection (a yamux stream through StreamOpener) from the pool keyed by
// (project, service, port, epoch), relays head and body both ways with backpressure, and maps
// failures to typed errors (502 broken upstream, 504 no answer in time). A new epoch is a new
// pool, so a moved project never reuses a connection to its old runner. Auth and target parsing
// happen before this; WebSocket upgrades are websocket.ts.
import http from 'node:http'
import type { Duplex } from 'node:stream'
import { HopgateError, isHopgateError } from '../../shared/errors.js'
import type { Router } from '../routing/router.js'
import type { StreamOpener } from '../tunnel/opener.js'
import type { ParsedTarget } from './target.js'
import { downstreamResponseHeaders, upstreamRequestHeaders } from './headers.js'

export interface ProxyLimits {
  /** Time from sending the request to the upstream's response head, in ms. @default 60000 */
  upstreamTimeoutMs: number
  /** How long an idle pooled upstream connection is kept, in ms (below Node's 5 s). @default 4000 */
  upstreamIdleMs: number
  /** Upstream connections per (project, service, port, epoch). @default 256 */
  maxSocketsPerPool: number
}

export const DEFAULT_PROXY_LIMITS: ProxyLimits = {
  upstreamTimeoutMs: 60_000,
  upstreamIdleMs: 4000,
  maxSocketsPerPool: 256,
}

export interface ForwardRequest {
  req: http.IncomingMessage
  res: http.ServerResponse
  target: ParsedTarget
  account: string
  clientIp: string
  clientAddress: string
  proto: 'http' | 'https'
}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS'])

/** Gives a yamux stream the few net.Socket methods http.Agent and ClientRequest call. */
export function asSocket(stream: Duplex): Duplex {
  const s = stream as Duplex & Record<string, unknown>
  s.setKeepAlive = () => s
  s.setNoDelay = () => s
  s.ref = () => s
  s.unref = () => s
  s.setTimeout = () => s
  s.timeout = 0
  // The upstream closed its side (keep-alive timeout): close ours so the pool drops it instead of
  // handing a half-closed connection to the next request.
  stream.once('end', () => stream.end())
  return stream
}

interface Pool {
  agent: http.Agent
  /** Performance.now() when the pool last had no sockets at all. */
  key: string
}

export class HttpProxy {
  private readonly pools = new Map<string, Pool>()
  private readonly sweep: NodeJS.Timeout
  private closed = false

  constructor(
    private readonly opts: {
      opener: StreamOpener
      router: Router
      limits: ProxyLimits
    },
  ) {
    // Pools whose every connection has closed are dropped, so idle projects cost nothing.
    this.sweep = setInterval(
      () => this.dropEmptyPools(),
      Math.max(1000, opts.limits.upstreamIdleMs),
    )
    this.sweep.unref()
  }

  get poolCount(): number {
    return this.pools.size
  }

  async forward(f: ForwardRequest): Promise<void> {
    const { project, service, port } = f.target
    // Resolved here, per request: the pool key carries the epoch the route has right now.
    const route = await this.opts.router.resolve(project)
    const pool = this.pool(project, service, port, route.epoch, f.clientAddress)
    const chunked = f.req.headers['transfer-encoding'] !== undefined
    const headers = upstreamRequestHeaders(f.req.rawHeaders, {
      account: f.account,
      clientIp: f.clientIp,
      proto: f.proto,
      chunked,
    })
    const hasBody = chunked || Number(f.req.headers['content-length'] ?? 0) > 0
    await this.attempt(f, pool, headers, !hasBody && IDEMPOTENT.has(f.req.method ?? ''))
  }

  private attempt(f: ForwardRequest, pool: Pool, headers: string[], retry: boolean): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const up = http.request({
        agent: pool.agent,
        method: f.req.method,
        path: f.target.upstreamTarget,
        headers,
        setHost: false,
      })
      let answered = false
      const timer = setTimeout(() => {
        up.destroy(new HopgateError('HOPGATE_ERR_HTTP_UPSTREAM_TIMEOUT'))
      }, this.opts.limits.upstreamTimeoutMs)
      const onClientGone = (): void => {
        if (!f.res.writableFinished) up.destroy()
      }
      f.res.once('close', onClientGone)
      up.once('response', (upRes) => {
        answered = true
        clearTimeout(timer)
        f.res.writeHead(
          upRes.statusCode ?? 502,
          upRes.statusMessage,
          downstreamResponseHeaders(upRes.rawHeaders),
        )
        upRes.pipe(f.res)
        upRes.once('error', () => f.res.destroy())
        upRes.once('aborted', () => f.res.destroy())
        upRes.once('end', () => resolve())
        f.res.once('close', () => resolve())
      })
      up.once('error', (err) => {
        clearTimeout(timer)
        f.res.off('close', onClientGone)
        if (answered) {
          f.res.destroy()
          resolve()
          return
        }
        // A pooled connection the upstream closed as we reused it: try once more, fresh or pooled.
        if (retry && up.reusedSocket && !isHopgateError(err)) {
          this.attempt(f, pool, headers, false).then(resolve, reject)
          return
        }
        reject(
          isHopgateError(err)
            ? err
            : new HopgateError('HOPGATE_ERR_HTTP_UPSTREAM_FAILED', undefined, { cause: err }),
        )
      })
      if (retry) up.end()
      else f.req.pipe(up)
    })
  }

  private pool(
    project: string,
    service: 'port' | 'raw',
    port: number,
    epoch: number,
    clientAddress: string,
  ): Pool {
    const key = `${project}/${service}/${port}/${epoch}`
    let pool = this.pools.get(key)
    if (pool) return pool
    const opener = this.opts.opener
    const agent = new http.Agent({
      keepAlive: true,
      maxSockets: this.opts.limits.maxSocketsPerPool,
      maxFreeSockets: this.opts.limits.maxSocketsPerPool,
      scheduling: 'lifo',
    })
    // http.Agent calls createConnection(options, callback) and accepts an asynchronous answer.
    ;(agent as unknown as { createConnection: unknown }).createConnection = (
      _options: unknown,
      cb: (err: Error | null, socket?: Duplex) => void,
    ): undefined => {
      opener
        .open({ project, service, port, clientAddress })
        .then(({ stream }) => {
          if (this.closed) {
            stream.destroy()
            cb(new HopgateError('HOPGATE_ERR_ABORTED', 'edge closing'))
            return
          }
          asSocket(stream)
          stream.resume()
          cb(null, stream)
        })
        .catch((err: unknown) => cb(err as Error))
      return undefined
    }
    const idleMs = this.opts.limits.upstreamIdleMs
    agent.on('free', (socket: Duplex & { hopgateIdle?: NodeJS.Timeout }) => {
      clearTimeout(socket.hopgateIdle)
      socket.hopgateIdle = setTimeout(() => {
        const free = Object.values(agent.freeSockets).flat()
        if (free.includes(socket as never)) socket.destroy()
      }, idleMs)
      socket.hopgateIdle.unref()
    })
    pool = { agent, key }
    this.pools.set(key, pool)
    return pool
  }

  private dropEmptyPools(): void {
    for (const [key, pool] of this.pools) {
      const busy =
        Object.keys(pool.agent.sockets).length +
        Object.keys(pool.agent.freeSockets).length +
        Object.keys(pool.agent.requests).length
      if (busy === 0) {
        pool.agent.destroy()
        this.pools.delete(key)
      }
    }
  }

  close(): void {
    this.closed = true
    clearInterval(this.sweep)
    for (const pool of this.pools.values()) pool.agent.destroy()
    this.pools.clear()
  }
}
