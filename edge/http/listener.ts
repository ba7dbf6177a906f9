// The HTTP ingress's listening socket: plain HTTP (a load balancer terminates TLS) or HTTPS when
// given a cert and key, with every Node server limit set explicitly (docs/LIMITS.md, "HTTP
// ingress"), and connection tracking so close() ends keep-alive and upgraded connections too.
// Owns no routing: requests and upgrades go to the handlers it is given.
import http from 'node:http'
import https from 'node:https'
import type net from 'node:net'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'
import { MAX_REQUEST_HEADERS } from './headers.js'

export interface ListenerLimits {
  /** Request line plus headers, in bytes; past it Node answers 431. @default 16384 */
  maxHeaderBytes: number
  /** Time for a client to send the whole head, in ms (slowloris); 408. @default 10000 */
  headersTimeoutMs: number
  /** Time for a client to send the whole request, body included, in ms; not for upgrades. @default 60000 */
  requestTimeoutMs: number
  /** Idle time between requests on a keep-alive connection, in ms. @default 5000 */
  keepAliveTimeoutMs: number
  /** How often Node checks the two request timeouts, in ms (its default is 30 s). @default 1000 */
  connectionsCheckingIntervalMs: number
}

export const DEFAULT_LISTENER_LIMITS: ListenerLimits = {
  maxHeaderBytes: 16 * 1024,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 60_000,
  keepAliveTimeoutMs: 5000,
  connectionsCheckingIntervalMs: 1000,
}

export interface ListenerOptions {
  host: string
  port: number
  tls?: { cert: string | Buffer; key: string | Buffer }
  limits: ListenerLimits
  onRequest: (req: http.IncomingMessage, res: http.ServerResponse) => void
  onUpgrade: (req: http.IncomingMessage, socket: Duplex, head: Buffer) => void
  /** CONNECT requests (authority form); Node would otherwise close them without an answer. */
  onConnect: (req: http.IncomingMessage, socket: Duplex) => void
}

export interface Listener {
  server: http.Server
  address: AddressInfo
  proto: 'http' | 'https'
  close(): Promise<void>
}

export async function startListener(opts: ListenerOptions): Promise<Listener> {
  const l = opts.limits
  const serverOpts: http.ServerOptions = {
    maxHeaderSize: l.maxHeaderBytes,
    headersTimeout: l.headersTimeoutMs,
    requestTimeout: l.requestTimeoutMs,
    keepAliveTimeout: l.keepAliveTimeoutMs,
    connectionsCheckingInterval: l.connectionsCheckingIntervalMs,
    requireHostHeader: true,
    // Duplicate Host must stay visible in rawHeaders to be refused, not joined.
    joinDuplicateHeaders: false,
    insecureHTTPParser: false,
  }
  const server: http.Server = opts.tls
    ? https.createServer({ ...serverOpts, cert: opts.tls.cert, key: opts.tls.key })
    : http.createServer(serverOpts)
  // One more than allowed, so "too many" is seen and refused instead of silently truncated.
  server.maxHeadersCount = MAX_REQUEST_HEADERS + 1
  server.keepAliveTimeout = l.keepAliveTimeoutMs
  server.headersTimeout = l.headersTimeoutMs
  server.requestTimeout = l.requestTimeoutMs
  const sockets = new Set<net.Socket>()
  server.on('connection', (s: net.Socket) => {
    sockets.add(s)
    s.once('close', () => sockets.delete(s))
  })
  server.on('request', opts.onRequest)
  server.on('upgrade', opts.onUpgrade)
  server.on('connect', opts.onConnect)
  server.listen(opts.port, opts.host)
  await once(server, 'listening')
  return {
    server,
    address: server.address() as AddressInfo,
    proto: opts.tls ? 'https' : 'http',
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      for (const s of sockets) s.destroy()
      await closed
    },
  }
}
