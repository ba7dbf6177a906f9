// yamux-js 0.2.0 *as shipped*, as a MuxPeer: a wire-compat oracle for the parts it gets right and a
// "what people would use" benchmark baseline. We do not fix its flow control or stream lifecycle.
//
// What yamux-js 0.2.0 gets wrong (read from node_modules/yamux-js/lib and measured here):
//  1. Framing: Session._transform assumes every chunk it is written starts at a frame boundary and
//     holds whole frames. A header split across socket reads (< 12 bytes) is dropped; a Data body
//     split across reads is dropped and the next read is parsed as its body; bytes after a GoAway
//     frame in the same chunk are dropped. Any Data frame bigger than one TCP read (its own frames
//     go up to 256 KiB) therefore corrupts the session. => the only thing we add: YamuxFrameSplitter,
//     which re-frames the transport bytes into exactly one whole frame per chunk (opts.reframe,
//     default true). Everything behind it is the library unchanged.
//  2. FIN is never processed: processFlags tests `flags === SYN` where it means FIN, and Data-frame
//     flags are never looked at at all. Its streams never end (no 'end') on a remote FIN.
//  3. Streams are removed from its table only on RST (or on a second close()), so they leak: its
//     acceptBacklog (256) counts every inbound stream ever accepted, and the 257th inbound stream
//     is answered with RST ("backlog exceeded").
//  4. No receive backpressure: received data is push()ed regardless of push()'s return value and a
//     window update is sent immediately, so a slow reader buffers without bound. (Its _read only
//     complains if the requested read size exceeds the window.)
//  5. When its send window is 0, _write re-polls with setTimeout(100 ms) instead of waiting for the
//     window update: a flow-controlled sender moves at most one window per 100 ms.
//  6. A SYN is recognised only as `flags === SYN` and returns before delivering the payload, so data
//     carried on a SYN Data frame is dropped; a SYN combined with other flags is not a new stream.
//     An inbound stream is ACKed only by its first outgoing frame (its first data, or the window
//     update after it first receives data); one it close()s before either gets a FIN with no ACK.
//  7. Lifecycle: Duplex end() sends nothing (FIN is its own close() method) and destroy() sends no
//     RST (it cannot send RST at all). A remote RST only marks the stream; a later write emits
//     'error' and never calls the write callback. There is no public ping or goAway: ping() is
//     private and returns nothing (pong only clears a timer), goAway() is private and does not stop
//     it accepting streams. Session.close() sends GoAway(normal), drops every stream, ends.
//  8. Its Client has no stream callback: streams the remote opens to a Client are registered (and
//     ACKed once data arrives) but never surfaced. Only Server accepts.
//  9. open() after a remote GoAway or shutdown emits 'error' on the session and returns a dead
//     stream (nothing is sent).
// 10. close() end()s its own input side: any frame the peer sends after it (e.g. the peer's own
//     GoAway when both close at once) is a "write after end" that errors and destroys the session,
//     which then never ends the transport. The adapter's close() unpipes the input first.
//
// Adapter mapping (thin, documented, no behavioural fixes):
//  - end() -> its close() (sends WindowUpdate|FIN), via an instance _final. destroy() is left as is.
//  - ping(): calls its private ping() and resolves when the splitter sees the matching Ping ACK
//    go by on the wire. goAway(): absent (no public API). onStream() on a client throws (quirk 8).
//  - openStream() rejects with the error the session emitted synchronously (quirk 9).
//  - Its console.log logger is replaced by one that records into `logs`.
import { Transform, type Duplex, type TransformCallback } from 'node:stream'
import { format } from 'node:util'
import { Client, Server, type Config, type Stream } from 'yamux-js'
import type { MuxPeer, PeerRole } from './types.js'

const HEADER_LENGTH = 12
const TYPE_DATA = 0
const TYPE_PING = 2
const FLAG_ACK = 2

export interface FrameInfo {
  type: number
  flags: number
  streamId: number
  length: number
}

/**
 * Parses the yamux byte stream. With reframe=true it emits exactly one whole frame per chunk
 * (what yamux-js's parser needs); with reframe=false it passes chunks through untouched and only
 * observes frames (onFrame).
 */
export class YamuxFrameSplitter extends Transform {
  readonly #reframe: boolean
  readonly #onFrame: ((f: FrameInfo) => void) | undefined
  #chunks: Buffer[] = []
  #buffered = 0

  constructor(reframe: boolean, onFrame?: (f: FrameInfo) => void) {
    super()
    this.#reframe = reframe
    this.#onFrame = onFrame
  }

  /** Remove and return the first n buffered bytes (n <= #buffered). */
  #take(n: number): Buffer {
    const first = this.#chunks[0]
    if (first !== undefined && first.length >= n) {
      const out = first.subarray(0, n)
      if (first.length === n) this.#chunks.shift()
      else this.#chunks[0] = first.subarray(n)
      this.#buffered -= n
      return out
    }
    const parts: Buffer[] = []
    let need = n
    while (need > 0) {
      const c = this.#chunks[0]
      if (c === undefined) break
      if (c.length <= need) {
        parts.push(c)
        this.#chunks.shift()
        need -= c.length
      } else {
        parts.push(c.subarray(0, need))
        this.#chunks[0] = c.subarray(need)
        need = 0
      }
    }
    this.#buffered -= n
    return Buffer.concat(parts, n)
  }

  #peekHeader(): Buffer {
    const first = this.#chunks[0]
    if (first !== undefined && first.length >= HEADER_LENGTH)
      return first.subarray(0, HEADER_LENGTH)
    return Buffer.concat(this.#chunks, this.#buffered).subarray(0, HEADER_LENGTH)
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#chunks.push(chunk)
    this.#buffered += chunk.length
    while (this.#buffered >= HEADER_LENGTH) {
      const h = this.#peekHeader()
      const type = h.readUInt8(1)
      const length = h.readUInt32BE(8)
      const frameLength = HEADER_LENGTH + (type === TYPE_DATA ? length : 0)
      if (this.#buffered < frameLength) break
      const frame = this.#take(frameLength)
      this.#onFrame?.({ type, flags: h.readUInt16BE(2), streamId: h.readUInt32BE(4), length })
      if (this.#reframe) this.push(frame)
    }
    if (!this.#reframe) this.push(chunk)
    cb()
  }
}

export interface YamuxJsPeerOptions {
  /** Put YamuxFrameSplitter in front of the session (default true; false = exactly as shipped). */
  reframe?: boolean
  /** yamux-js config (keepAliveInterval/connectionWriteTimeout are in seconds). */
  config?: Config
  /** How long close() waits for the transport to close before destroying it. */
  closeTimeoutMs?: number
}

export interface YamuxJsPeer extends MuxPeer {
  readonly session: Client | Server
  /** 'error' events the session emitted (it emits them for failed opens, timeouts, GoAway errors). */
  readonly errors: Error[]
  /** What it would have console.log'ged. */
  readonly logs: string[]
  ping(): Promise<number>
}

/** Private members of yamux-js Session we use (ping is private; its pong has no completion signal). */
interface SessionInternals {
  pingID: number
  ping(): void
  isClosed(): boolean
}

function adaptStream(s: Stream): Duplex {
  // FIN is yamux-js's close(); Node's end() would otherwise put nothing on the wire
  s._final = (cb: (err?: Error | null) => void): void => {
    s.close()
    cb()
  }
  return s
}

export function yamuxJsPeer(
  transport: Duplex,
  role: PeerRole,
  opts: YamuxJsPeerOptions = {},
): YamuxJsPeer {
  const errors: Error[] = []
  const logs: string[] = []
  const callbacks: Array<(s: Duplex) => void> = []
  const early: Duplex[] = []
  const pings = new Map<
    number,
    { start: number; resolve: (rtt: number) => void; reject: (e: Error) => void }
  >()
  const config: Config = {
    ...opts.config,
    logger: opts.config?.logger ?? ((...args: unknown[]) => logs.push(format(...args))),
  }
  const onInbound = (d: Duplex): void => {
    const s = adaptStream(d as Stream)
    if (callbacks.length === 0) early.push(s)
    for (const c of callbacks) c(s)
  }
  const session = role === 'client' ? new Client(config) : new Server(onInbound, config)
  const internals = session as unknown as SessionInternals
  session.on('error', (err: Error) => errors.push(err))

  const splitter = new YamuxFrameSplitter(opts.reframe ?? true, (f) => {
    if (f.type !== TYPE_PING || (f.flags & FLAG_ACK) === 0) return
    const p = pings.get(f.length)
    if (p === undefined) return
    pings.delete(f.length)
    p.resolve(performance.now() - p.start)
  })
  transport.pipe(splitter).pipe(session).pipe(transport)
  transport.on('error', (err: Error) => errors.push(err))

  const failPings = (): void => {
    for (const p of pings.values()) p.reject(new Error('yamux-js session closed'))
    pings.clear()
  }
  transport.once('close', () => {
    // stop its keepalive interval (it only stops in close()) and fail outstanding pings
    session.close()
    failPings()
  })

  const closeTimeoutMs = opts.closeTimeoutMs ?? 2000
  let closing: Promise<void> | undefined

  return {
    name: 'yamux-js',
    session,
    errors,
    logs,
    async openStream() {
      const before = errors.length
      const s = session.open()
      if (errors.length > before)
        throw errors[errors.length - 1] ?? new Error('yamux-js open failed')
      return adaptStream(s)
    },
    onStream(cb) {
      if (role === 'client')
        throw new Error(
          'yamux-js Client cannot accept streams (only its Server has a stream callback)',
        )
      callbacks.push(cb)
      for (const s of early.splice(0)) cb(s)
    },
    ping() {
      if (internals.isClosed()) return Promise.reject(new Error('yamux-js session closed'))
      return new Promise<number>((resolve, reject) => {
        pings.set(internals.pingID, { start: performance.now(), resolve, reject })
        internals.ping()
      })
    },
    close() {
      closing ??= (async () => {
        // its close() end()s the session's writable side, so bytes the peer sends afterwards (its
        // own GoAway, say) would hit "write after end", error the session and stop it ending the
        // transport: detach the input first and discard it
        splitter.unpipe(session)
        splitter.resume()
        session.close()
        failPings()
        if (transport.closed || transport.destroyed) return
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => transport.destroy(), closeTimeoutMs)
          transport.once('close', () => {
            clearTimeout(timer)
            resolve()
          })
        })
      })()
      return closing
    },
  }
}
