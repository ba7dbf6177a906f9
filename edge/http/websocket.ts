// WebSocket through the edge: checks the handshake (GET, Upgrade: websocket, a 16-byte base64
// key, version 13, no body), opens a fresh tunnel stream (never pooled), sends the cleaned
// handshake, and becomes a byte pipe only if the runner answers 101. Any other answer (426, 404,
// ...) is relayed as an ordinary response and the connection closed. Idle pipes are cut; open
// pipes are counted per project against a limit. Auth and target parsing happen before this.
import http from 'node:http'
import type { Duplex } from 'node:stream'
import { HopgateError } from '../../shared/errors.js'
import type { StreamOpener } from '../tunnel/opener.js'
import type { ParsedTarget } from './target.js'
import { downstreamResponseHeaders, upstreamRequestHeaders } from './headers.js'
import { asSocket } from './proxy.js'

export interface WebSocketLimits {
  /** A pipe with no bytes either way for this long is closed, in ms. @default 600000 */
  wsIdleTimeoutMs: number
  /** Open WebSockets per project on this edge. @default 1000 */
  maxWebSocketsPerProject: number
  /** Time for the runner to answer the handshake, in ms. @default 60000 */
  upstreamTimeoutMs: number
}

const KEY_RE = /^[A-Za-z0-9+/]{22}==$/

/** Throws HOPGATE_ERR_WS_BAD_UPGRADE (or HTTP_BAD_REQUEST for a non-WebSocket upgrade). */
export function checkWebSocketHandshake(req: http.IncomingMessage): void {
  const upgrade = (req.headers.upgrade ?? '').trim().toLowerCase()
  // h2c and anything else: the classic smuggling route past a proxy's checks; not offered.
  if (upgrade !== 'websocket') {
    throw new HopgateError('HOPGATE_ERR_HTTP_BAD_REQUEST', `upgrade to ${upgrade || '(none)'}`)
  }
  const bad = (why: string): never => {
    throw new HopgateError('HOPGATE_ERR_WS_BAD_UPGRADE', why)
  }
  if (req.method !== 'GET') bad('method')
  if (req.httpVersion !== '1.1') bad('HTTP version')
  const key = req.headers['sec-websocket-key']
  if (typeof key !== 'string' || !KEY_RE.test(key) || Buffer.from(key, 'base64').length !== 16) {
    bad('Sec-WebSocket-Key')
  }
  if (req.headers['sec-websocket-version'] !== '13') bad('Sec-WebSocket-Version')
  if (req.headers['transfer-encoding'] !== undefined) bad('body')
  const cl = req.headers['content-length']
  if (cl !== undefined && cl !== '0') bad('body')
}

export interface UpgradeRequest {
  req: http.IncomingMessage
  socket: Duplex
  head: Buffer
  target: ParsedTarget
  account: string
  clientIp: string
  clientAddress: string
  proto: 'http' | 'https'
}

export type UpgradeOutcome = { piped: true } | { piped: false; status: number }

export class WebSocketRelay {
  private readonly open = new Map<string, number>()
  // Live pipes by `project account`, so a revoked grant can end them (ingress.ts listens).
  private readonly pipes = new Map<string, Set<() => void>>()

  constructor(
    private readonly opts: {
      opener: StreamOpener
      limits: WebSocketLimits
      onOpen?: () => void
      onClose?: () => void
    },
  ) {}

  /** Ends every open WebSocket of `account` on `project`; returns how many. */
  closeFor(project: string, account: string): number {
    const set = this.pipes.get(`${project} ${account}`)
    if (!set) return 0
    const n = set.size
    for (const end of [...set]) end()
    return n
  }

  /** Open WebSockets of a project on this edge. */
  count(project: string): number {
    return this.open.get(project) ?? 0
  }

  /** Resolves once the runner answered; rejects (typed) before anything was sent to the user. */
  async relay(u: UpgradeRequest): Promise<UpgradeOutcome> {
    const { project, service, port } = u.target
    if (this.count(project) >= this.opts.limits.maxWebSocketsPerProject) {
      throw new HopgateError('HOPGATE_ERR_WS_LIMIT')
    }
    // Counted from the open, so a burst of handshakes cannot overshoot the limit.
    this.open.set(project, this.count(project) + 1)
    let released = false
    const release = (): void => {
      if (released) return
      released = true
      const n = this.count(project) - 1
      if (n > 0) this.open.set(project, n)
      else this.open.delete(project)
    }
    const abort = new AbortController()
    const onClientClose = (): void => abort.abort()
    u.socket.once('close', onClientClose)
    try {
      const { stream } = await this.opts.opener.open({
        project,
        service,
        port,
        clientAddress: u.clientAddress,
        signal: abort.signal,
      })
      asSocket(stream)
      stream.resume()
      const outcome = await this.handshake(u, stream)
      if (!outcome.piped) release()
      else this.pipe(u, stream, release)
      return outcome
    } catch (err) {
      release()
      throw err
    } finally {
      u.socket.off('close', onClientClose)
    }
  }

  private handshake(u: UpgradeRequest, stream: Duplex): Promise<UpgradeOutcome> {
    return new Promise<UpgradeOutcome>((resolve, reject) => {
      const up = http.request({
        createConnection: () => stream,
        method: 'GET',
        path: u.target.upstreamTarget,
        headers: upstreamRequestHeaders(u.req.rawHeaders, {
          account: u.account,
          clientIp: u.clientIp,
          proto: u.proto,
          websocket: true,
        }),
        setHost: false,
      })
      const timer = setTimeout(
        () => up.destroy(new HopgateError('HOPGATE_ERR_HTTP_UPSTREAM_TIMEOUT')),
        this.opts.limits.upstreamTimeoutMs,
      )
      up.once('upgrade', (res, upSocket, upHead) => {
        clearTimeout(timer)
        if (res.statusCode !== 101) {
          upSocket.destroy()
          reject(new HopgateError('HOPGATE_ERR_HTTP_UPSTREAM_FAILED', 'bad upgrade answer'))
          return
        }
        let head = `HTTP/1.1 101 ${res.statusMessage || 'Switching Protocols'}\r\n`
        const h = downstreamResponseHeaders(res.rawHeaders, true)
        for (let i = 0; i < h.length; i += 2) head += `${h[i]}: ${h[i + 1]}\r\n`
        u.socket.write(head + '\r\n')
        if (upHead.length > 0) u.socket.write(upHead)
        resolve({ piped: true })
      })
      up.once('response', (res) => {
        // Not 101: an ordinary answer, relayed in full, and the connection is not a pipe.
        clearTimeout(timer)
        let head = `HTTP/1.1 ${res.statusCode} ${res.statusMessage ?? ''}\r\n`
        const h = downstreamResponseHeaders(res.rawHeaders)
        for (let i = 0; i < h.length; i += 2) head += `${h[i]}: ${h[i + 1]}\r\n`
        u.socket.write(head + 'connection: close\r\n\r\n')
        res.pipe(u.socket)
        res.once('end', () => stream.destroy())
        res.once('error', () => u.socket.destroy())
        resolve({ piped: false, status: res.statusCode ?? 502 })
      })
      up.once('error', (err) => {
        clearTimeout(timer)
        reject(
          err instanceof HopgateError
            ? err
            : new HopgateError('HOPGATE_ERR_HTTP_UPSTREAM_FAILED', undefined, { cause: err }),
        )
      })
      up.end()
    })
  }

  private pipe(u: UpgradeRequest, stream: Duplex, release: () => void): void {
    // After 'upgrade', the http client hands the stream back as upSocket: the same object.
    const client = u.socket
    if (u.head.length > 0) stream.write(u.head)
    const key = `${u.target.project} ${u.account}`
    const pipes = this.pipes.get(key) ?? new Set<() => void>()
    this.pipes.set(key, pipes)
    let idle: NodeJS.Timeout | undefined
    const kick = (): void => {
      clearTimeout(idle)
      idle = setTimeout(() => done(), this.opts.limits.wsIdleTimeoutMs)
      idle.unref()
    }
    let finished = false
    const done = (): void => {
      if (finished) return
      finished = true
      clearTimeout(idle)
      client.destroy()
      stream.destroy()
      release()
      pipes.delete(done)
      if (pipes.size === 0 && this.pipes.get(key) === pipes) this.pipes.delete(key)
      this.opts.onClose?.()
    }
    pipes.add(done)
    this.opts.onOpen?.()
    client.on('data', kick)
    stream.on('data', kick)
    client.on('error', done)
    stream.on('error', done)
    client.once('close', done)
    stream.once('close', done)
    client.pipe(stream)
    stream.pipe(client)
    kick()
  }
}
