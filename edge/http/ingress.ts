// The HTTP and WebSocket ingress assembled: listener, request-target parser, auth (tokens, the
// one-time link, the cached ACL), the per-request proxy and the WebSocket relay, with errors
// answered as readable pages. startEdge starts it when given an `http` option. It holds no state
// of its own beyond caches and pools; routes and the ACL live in their stores.
import type http from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'
import { HopgateError, isHopgateError } from '../../shared/errors.js'
import { noopMetrics, type Metrics } from '../../shared/metrics.js'
import type { AccessStore } from '../auth/access-store.js'
import { AccessCache } from '../auth/access-cache.js'
import type { UserTokens } from '../auth/user-tokens.js'
import type { Router } from '../routing/router.js'
import type { StreamOpener } from '../tunnel/opener.js'
import { Authenticator } from './auth.js'
import { sendError, sendRawError } from './errors-page.js'
import { checkRequestHeaders } from './headers.js'
import { DEFAULT_LISTENER_LIMITS, startListener, type ListenerLimits } from './listener.js'
import { DEFAULT_PROXY_LIMITS, HttpProxy, type ProxyLimits } from './proxy.js'
import { assertBasePath, parseTarget } from './target.js'
import { checkWebSocketHandshake, WebSocketRelay, type WebSocketLimits } from './websocket.js'

export type HttpLimits = ListenerLimits & ProxyLimits & WebSocketLimits

export const DEFAULT_HTTP_LIMITS: HttpLimits = {
  ...DEFAULT_LISTENER_LIMITS,
  ...DEFAULT_PROXY_LIMITS,
  wsIdleTimeoutMs: 600_000,
  maxWebSocketsPerProject: 1000,
}

export interface HttpIngressOptions {
  /** @default 0.0.0.0 (DESIGN: :8080) */
  host: string
  port: number
  /** Enforced prefix, e.g. `/hub`: every target must start with it. @default '' */
  basePath?: string
  /** Serve HTTPS with this PEM cert and key; plain HTTP otherwise. */
  tls?: { cert: string | Buffer; key: string | Buffer }
  opener: StreamOpener
  router: Router
  tokens: UserTokens
  access: AccessStore
  metrics?: Metrics
  limits?: Partial<HttpLimits>
  /** Access decision TTLs, in ms. @default allow 90000, deny 15000 */
  accessAllowTtlMs?: number
  accessDenyTtlMs?: number
  /** Wall-clock Unix ms, for token expiry. @default Date.now */
  now?: () => number
  /** Refusals and failures: code first, never a token. */
  onEvent?: (event: string, detail: Record<string, unknown>) => void
}

export interface HttpIngress {
  address: AddressInfo
  server: http.Server
  accessCache: AccessCache
  proxy: HttpProxy
  websockets: WebSocketRelay
  close(): Promise<void>
}

function clientOf(req: http.IncomingMessage): { ip: string; address: string } {
  const ip = req.socket.remoteAddress ?? '0.0.0.0'
  const port = req.socket.remotePort ?? 0
  return { ip, address: ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}` }
}

export async function startHttpIngress(opts: HttpIngressOptions): Promise<HttpIngress> {
  const basePath = opts.basePath ?? ''
  assertBasePath(basePath)
  const limits: HttpLimits = { ...DEFAULT_HTTP_LIMITS, ...opts.limits }
  const metrics = opts.metrics ?? noopMetrics
  const event = opts.onEvent ?? (() => {})
  const requests = metrics.counter({
    name: 'hopgate_edge_http_requests_total',
    help: 'HTTP requests and upgrades answered by the edge, by status code',
    labelNames: ['status'],
  })
  const refused = metrics.counter({
    name: 'hopgate_edge_http_refused_total',
    help: 'HTTP requests the edge answered itself with an error, by hopgate error code',
    labelNames: ['code'],
  })
  const wsOpen = metrics.gauge({
    name: 'hopgate_edge_http_websockets',
    help: 'WebSockets piped through the edge now',
  })
  const accessCache = new AccessCache({
    store: opts.access,
    ...(opts.accessAllowTtlMs !== undefined ? { allowTtlMs: opts.accessAllowTtlMs } : {}),
    ...(opts.accessDenyTtlMs !== undefined ? { denyTtlMs: opts.accessDenyTtlMs } : {}),
  })
  const proto = opts.tls ? 'https' : 'http'
  const auth = new Authenticator({
    tokens: opts.tokens,
    access: accessCache,
    secureCookies: proto === 'https',
    ...(opts.now ? { now: opts.now } : {}),
  })
  const proxy = new HttpProxy({ opener: opts.opener, router: opts.router, limits })
  const websockets = new WebSocketRelay({
    opener: opts.opener,
    limits,
    onOpen: () => wsOpen.inc(),
    onClose: () => wsOpen.dec(),
  })

  // A revoked grant also ends the account's open WebSockets on that project, not only new requests.
  const unsubscribe = opts.access.onChange((change) => {
    if (change.kind !== 'acl' || websockets.count(change.project) === 0) return
    opts.access.isCollaborator(change.project, change.account).then(
      (still) => {
        if (still) return
        const closed = websockets.closeFor(change.project, change.account)
        if (closed > 0) event('http-websockets-revoked', { project: change.project, closed })
      },
      (err: unknown) => event('http-acl-check-failed', { err }),
    )
  })

  const failed = (err: unknown, status: number, code: string): void => {
    requests.inc({ status: String(status) })
    refused.inc({ code })
    if (!isHopgateError(err) || status >= 500) event('http-failed', { code, status, err })
  }

  const handleRequest = async (
    req: http.IncomingMessage,
    res: http.ServerResponse,
  ): Promise<void> => {
    checkRequestHeaders(req.rawHeaders)
    const target = parseTarget(req.url ?? '', basePath)
    if (target.queryToken !== undefined) {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        throw new HopgateError('HOPGATE_ERR_HTTP_BAD_TARGET', 'hopgate_token only on GET')
      }
      const cookie = auth.redeemLink(target.queryToken, target.projectPrefix, req.headers)
      res.writeHead(303, {
        location: target.cleanTarget,
        'cache-control': 'no-store',
        'referrer-policy': 'no-referrer',
        'content-length': '0',
        ...(cookie ? { 'set-cookie': cookie } : {}),
      })
      res.end()
      requests.inc({ status: '303' })
      return
    }
    const account = await auth.authorize(req.headers, target.project)
    const client = clientOf(req)
    await proxy.forward({
      req,
      res,
      target,
      account,
      clientIp: client.ip,
      clientAddress: client.address,
      proto,
    })
    requests.inc({ status: String(res.statusCode) })
  }

  const handleUpgrade = async (
    req: http.IncomingMessage,
    socket: Duplex,
    head: Buffer,
  ): Promise<void> => {
    checkRequestHeaders(req.rawHeaders)
    const target = parseTarget(req.url ?? '', basePath)
    if (target.queryToken !== undefined) {
      throw new HopgateError('HOPGATE_ERR_HTTP_BAD_TARGET', 'hopgate_token on an upgrade')
    }
    checkWebSocketHandshake(req)
    const account = await auth.authorize(req.headers, target.project)
    const client = clientOf(req)
    const outcome = await websockets.relay({
      req,
      socket,
      head,
      target,
      account,
      clientIp: client.ip,
      clientAddress: client.address,
      proto,
    })
    requests.inc({ status: outcome.piped ? '101' : String(outcome.status) })
  }

  const listener = await startListener({
    host: opts.host,
    port: opts.port,
    ...(opts.tls ? { tls: opts.tls } : {}),
    limits,
    onRequest: (req, res) => {
      handleRequest(req, res).catch((err: unknown) => {
        const reply = sendError(res, err, req.headers.accept)
        failed(err, reply.status, reply.code)
      })
    },
    onConnect: (req, socket) => {
      socket.on('error', () => {})
      const err = new HopgateError('HOPGATE_ERR_HTTP_BAD_TARGET', 'CONNECT (authority form)')
      const reply = sendRawError(socket, err, req.headers.accept)
      failed(err, reply.status, reply.code)
    },
    onUpgrade: (req, socket, head) => {
      socket.on('error', () => {})
      handleUpgrade(req, socket, head).catch((err: unknown) => {
        const reply = sendRawError(socket, err, req.headers.accept)
        failed(err, reply.status, reply.code)
      })
    },
  })

  return {
    address: listener.address,
    server: listener.server,
    accessCache,
    proxy,
    websockets,
    close: async () => {
      unsubscribe()
      proxy.close()
      accessCache.close()
      await listener.close()
    },
  }
}
