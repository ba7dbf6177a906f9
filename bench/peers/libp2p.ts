// @chainsafe/libp2p-yamux 8.x run standalone (no libp2p node) over any Node Duplex transport, as a
// MuxPeer: a benchmark baseline and a wire-compat oracle for our own yamux.
//
// How it is wired (facts from node_modules/@chainsafe/libp2p-yamux and @libp2p/utils):
//  - The muxer wants a MessageStream "connection". SocketConnection below subclasses
//    AbstractMultiaddrConnection: sendData() writes to the socket and reports canSendMore from
//    socket.write(); socket 'drain' is dispatched as 'drain' (the muxer forwards it to streams);
//    socket data -> onData(); socket 'close' -> onTransportClosed().
//  - Role comes from the connection's direction: 'outbound' = client (odd ids), 'inbound' = server.
//  - Its streams are event-target message streams, not Node streams. Libp2pStreamDuplex bridges one
//    to a Node Duplex with backpressure both ways (see the class comment).
//
// Quirks worked around here:
//  - It assumes Node 22: Promise.withResolvers (muxer ping/keepalive, stream onDrain). On Node 20
//    every ping throws. We install a spec-shaped polyfill at import time, only if it is missing.
//  - maxReadBufferLength defaults to 4 MiB while the receive window auto-tunes up to 16 MiB, so a
//    paused (backpressured) stream gets aborted with StreamBufferError once more than 4 MiB is in
//    flight. We default both streamOptions.maxStreamWindowSize and maxReadBufferLength to 4 MiB.
//  - Its onDrain() promise is never cleared after the first drain, and 'drain' is broadcast to every
//    stream when the socket drains, so neither says "this stream has room". We release a held
//    Node write only when this stream's own writeBufferLength is below WRITE_HIGH_WATER, checked on
//    its 'drain' and 'idle' events.
//  - There is no public "GoAway but keep running": close() FINs every stream then sends GoAway.
//    goAway() here calls its private sendGoAway(NormalTermination), which is what close() uses; it
//    sets localGoAway, so its new outbound opens throw and new inbound SYNs are answered with RST.
//  - On a received GoAway(normal) it closes every existing stream at once (onTransportClosed), i.e.
//    it treats GoAway as "connection over", not "no new streams". Such a stream ends here with a
//    premature 'close' (destroy() without error) rather than a clean 'end', since no FIN came.
//  - Its keepalive pings at start. If it stops (remote GoAway, close) while a ping is in flight it
//    drops the ping, and the peer's correct, late pong is then an UnRequestedPingError that aborts
//    the connection. Wait for one ping round trip before sending it a GoAway if that matters.
import { Duplex } from 'node:stream'
import { format } from 'node:util'
import { GoAwayCode, yamux } from '@chainsafe/libp2p-yamux'
import type { YamuxMuxerInit } from '@chainsafe/libp2p-yamux'
import type { YamuxStream } from '@chainsafe/libp2p-yamux/stream'
import { AbstractMultiaddrConnection } from '@libp2p/utils'
import type { AbstractMultiaddrConnectionInit, SendResult } from '@libp2p/utils'
import type { Logger, StreamCloseEvent, StreamMessageEvent } from '@libp2p/interface'
import type { MuxPeer, PeerRole } from './types.js'

/** Install Promise.withResolvers (ES2024, Node 22) if this runtime lacks it. Idempotent. */
export function installPromiseWithResolvers(): void {
  const P = Promise as unknown as { withResolvers?: unknown }
  if (typeof P.withResolvers === 'function') return
  Object.defineProperty(Promise, 'withResolvers', {
    configurable: true,
    writable: true,
    enumerable: false,
    value: function withResolvers<T>(this: PromiseConstructor) {
      let resolve!: (value: T | PromiseLike<T>) => void
      let reject!: (reason?: unknown) => void
      const promise = new this<T>((res, rej) => {
        resolve = res
        reject = rej
      })
      return { promise, resolve, reject }
    },
  })
}
installPromiseWithResolvers()

const MiB = 1024 * 1024
/** Default receive window cap and read-buffer cap (must be window <= read buffer, see header). */
export const LIBP2P_STREAM_WINDOW = 4 * MiB
/** A held Node write is released once the libp2p stream's own write buffer is below this. */
export const WRITE_HIGH_WATER = 256 * 1024

type Muxer = ReturnType<ReturnType<ReturnType<typeof yamux>>['createStreamMuxer']>
type ByteList = Parameters<AbstractMultiaddrConnection['sendData']>[0]

/** A libp2p Logger that prints to stderr when DEBUG mentions hopgate:libp2p (or is '*'). */
function makeLogger(name: string): Logger {
  const debug = process.env.DEBUG ?? ''
  const enabled =
    debug === '*' || debug.split(',').some((d) => d.trim().startsWith('hopgate:libp2p'))
  const emit =
    (suffix: string) =>
    (formatter: unknown, ...args: unknown[]): void => {
      if (enabled) process.stderr.write(`${name}${suffix} ${format(formatter, ...args)}\n`)
    }
  return Object.assign(emit(''), {
    enabled,
    error: emit(' ERROR'),
    trace: emit(' trace'),
    newScope: (scope: string) => makeLogger(`${name}:${scope}`),
  })
}

/** The muxer only stores remoteAddr; nothing here reads it, so a placeholder avoids a multiaddr dependency. */
const NO_ADDR = {
  toString: () => '/hopgate/transport',
} as unknown as AbstractMultiaddrConnectionInit['remoteAddr']

/** AbstractMultiaddrConnection over a Node Duplex (net.Socket, tls.TLSSocket, in-memory pair). */
class SocketConnection extends AbstractMultiaddrConnection {
  readonly socket: Duplex

  constructor(socket: Duplex, direction: 'inbound' | 'outbound', log: Logger) {
    super({ remoteAddr: NO_ADDR, direction, log })
    this.socket = socket
    socket.on('data', (buf: Buffer) => this.onData(buf))
    socket.on('drain', () => this.safeDispatchEvent('drain'))
    socket.once('end', () => {
      this.onRemoteCloseWrite()
      // a yamux session is useless half-open: finish our side too (flushes queued writes first)
      if (!socket.writableEnded && !socket.destroyed) socket.end()
    })
    socket.once('close', () => this.onTransportClosed())
    socket.on('error', (err: Error) => this.abort(err))
  }

  sendData(data: ByteList): SendResult {
    let canSendMore = true
    for (const chunk of data) canSendMore = this.socket.write(chunk)
    return { sentBytes: data.byteLength, canSendMore }
  }

  sendReset(): void {
    this.socket.destroy()
  }

  sendPause(): void {
    this.socket.pause()
  }

  sendResume(): void {
    this.socket.resume()
  }

  async sendClose(): Promise<void> {
    const s = this.socket
    if (s.destroyed || s.writableFinished) return
    await new Promise<void>((resolve) => {
      const done = (): void => {
        s.off('finish', done)
        s.off('close', done)
        s.off('error', done)
        resolve()
      }
      s.on('finish', done)
      s.on('close', done)
      s.on('error', done)
      if (!s.writableEnded) s.end()
    })
  }
}

function toBuffer(u: Uint8Array): Buffer {
  return Buffer.from(u.buffer, u.byteOffset, u.byteLength)
}

/**
 * A Node Duplex over one libp2p YamuxStream.
 *  - read side: each 'message' is pushed; when push() returns false the libp2p stream is paused
 *    (it then stops sending window updates, so the remote stalls on its send window) and resumed
 *    from _read(). Its readable ends on 'end' after a real FIN ('remoteCloseWrite').
 *  - write side: send() always queues into the stream's write buffer; the Node write callback is
 *    held while that buffer is >= WRITE_HIGH_WATER and released on 'drain'/'idle' below it.
 *  - end() -> close() (FIN after the queue flushes); destroy() on an open stream -> abort() (RST).
 *  - remote RST -> destroy(StreamResetError); close without FIN (GoAway/transport) -> destroy().
 */
export class Libp2pStreamDuplex extends Duplex {
  readonly stream: YamuxStream
  #finSeen = false
  #pendingWrite: ((err?: Error | null) => void) | undefined

  constructor(stream: YamuxStream) {
    super({ allowHalfOpen: true })
    this.stream = stream
    stream.addEventListener('message', (evt: StreamMessageEvent) => this.#onMessage(evt))
    stream.addEventListener('remoteCloseWrite', () => {
      this.#finSeen = true
    })
    stream.addEventListener('end', () => {
      if (this.#finSeen && stream.status !== 'reset' && stream.status !== 'aborted') this.push(null)
    })
    stream.addEventListener('drain', () => this.#releaseWrite())
    stream.addEventListener('idle', () => this.#releaseWrite())
    stream.addEventListener('close', (evt: StreamCloseEvent) => this.#onClose(evt))
  }

  #onMessage(evt: StreamMessageEvent): void {
    const data = evt.data
    let more = true
    if (data instanceof Uint8Array) {
      more = this.push(toBuffer(data))
    } else {
      for (const chunk of data) more = this.push(toBuffer(chunk))
    }
    if (!more && this.stream.readStatus === 'readable') this.stream.pause()
  }

  #onClose(evt: StreamCloseEvent): void {
    if (this.destroyed) return
    if (evt.error != null) {
      this.destroy(evt.error)
    } else if (!this.#finSeen) {
      // transport closed, or the muxer got GoAway: no FIN came, so this is not a clean end
      this.destroy()
    }
    // else: both FINs exchanged; readable ends via 'end' once its buffered data is read
  }

  #releaseWrite(): void {
    const cb = this.#pendingWrite
    if (cb === undefined || this.stream.writeBufferLength >= WRITE_HIGH_WATER) return
    this.#pendingWrite = undefined
    cb()
  }

  override _read(): void {
    if (this.stream.readStatus === 'paused') this.stream.resume()
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    try {
      this.stream.send(chunk)
    } catch (err) {
      cb(err as Error)
      return
    }
    if (this.stream.writeBufferLength < WRITE_HIGH_WATER) cb()
    else this.#pendingWrite = cb
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.stream.close().then(
      () => cb(),
      (err: unknown) => cb(err as Error),
    )
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.#pendingWrite = undefined
    if (this.stream.status === 'open')
      this.stream.abort(err ?? new Error('stream destroyed locally'))
    cb(err)
  }
}

export interface Libp2pPeerOptions {
  /** Muxer init, merged over our defaults (streamOptions merged key by key). */
  init?: YamuxMuxerInit
  /** How long close() waits for streams to flush and the transport to close before forcing it. */
  closeTimeoutMs?: number
}

export interface Libp2pPeer extends MuxPeer {
  readonly muxer: Muxer
  ping(): Promise<number>
  goAway(): void
}

/** Wait for the transport's 'close'; destroy it if that takes longer than ms. */
function waitTransportClosed(transport: Duplex, ms: number): Promise<void> {
  if (transport.closed || transport.destroyed) return Promise.resolve()
  return new Promise((resolve) => {
    const timer = setTimeout(() => transport.destroy(), ms)
    transport.once('close', () => {
      clearTimeout(timer)
      resolve()
    })
  })
}

export function libp2pPeer(
  transport: Duplex,
  role: PeerRole,
  opts: Libp2pPeerOptions = {},
): Libp2pPeer {
  const log = makeLogger(`hopgate:libp2p-yamux:${role}`)
  const conn = new SocketConnection(transport, role === 'client' ? 'outbound' : 'inbound', log)
  const init: YamuxMuxerInit = {
    ...opts.init,
    streamOptions: {
      maxStreamWindowSize: LIBP2P_STREAM_WINDOW,
      maxReadBufferLength: LIBP2P_STREAM_WINDOW,
      ...opts.init?.streamOptions,
    },
  }
  const muxer: Muxer = yamux(init)().createStreamMuxer(conn)
  const closeTimeoutMs = opts.closeTimeoutMs ?? 2000
  const callbacks: Array<(s: Duplex) => void> = []
  let closing: Promise<void> | undefined

  return {
    name: 'libp2p-yamux',
    muxer,
    async openStream() {
      return new Libp2pStreamDuplex(await muxer.createStream())
    },
    onStream(cb) {
      callbacks.push(cb)
      if (callbacks.length > 1) return
      // the muxer keeps up to maxEarlyStreams inbound streams until a listener is added
      muxer.addEventListener('stream', (evt) => {
        const d = new Libp2pStreamDuplex(evt.detail)
        for (const c of callbacks) c(d)
      })
    },
    ping() {
      return muxer.ping()
    },
    goAway() {
      ;(muxer as unknown as { sendGoAway(code: GoAwayCode): void }).sendGoAway(
        GoAwayCode.NormalTermination,
      )
    },
    close() {
      closing ??= (async () => {
        try {
          await muxer.close({ signal: AbortSignal.timeout(closeTimeoutMs) })
        } catch (err) {
          muxer.abort(err as Error)
        }
        try {
          await conn.close({ signal: AbortSignal.timeout(closeTimeoutMs) })
        } catch {
          transport.destroy()
        }
        await waitTransportClosed(transport, closeTimeoutMs)
      })()
      return closing
    },
  }
}
