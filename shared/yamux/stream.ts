// One yamux stream as a Node Duplex: send window and transport backpressure on the write side,
// receive window credited as the consumer reads on the read side, FIN for end(), RST for
// destroy(). Frames reach it from session.ts; it never touches the transport itself.
import { Duplex } from 'node:stream'
import { HopgateError, abortError } from '../errors.js'
import type { TimerHandle } from '../clock.js'
import { Flag, FrameType, INITIAL_STREAM_WINDOW } from './frame.js'
import type { YamuxConfig } from './config.js'

/** What a stream needs from its session. */
export interface StreamHost {
  readonly config: YamuxConfig
  /** True while the transport has refused more writes (until its 'drain'). */
  readonly congested: boolean
  /** Smoothed round-trip time in milliseconds; 0 until measured. */
  readonly rttMs: number
  now(): number
  setTimer(fn: () => void, ms: number): TimerHandle
  clearTimer(handle: TimerHandle | undefined): void
  sendFrame(type: FrameType, flags: number, streamId: number, length: number): void
  sendData(streamId: number, flags: number, payload: Buffer): void
  waitForDrain(stream: YamuxStream): void
  /** Call stream.deliver() after this event-loop turn's I/O (see onData). */
  deliverLater(stream: YamuxStream): void
  /** The stream is done with the session (both sides closed, or reset). */
  release(stream: YamuxStream): void
}

const WAIT_NONE = 0
const WAIT_WINDOW = 1
const WAIT_DRAIN = 2

/** Read and write buffering of the Duplex itself; windows bound the rest. */
const STREAM_HIGH_WATER_MARK = 64 * 1024

export class YamuxStream extends Duplex {
  /** The yamux stream id: odd when the client opened it, even when the server did. */
  readonly id: number
  /** True if this side opened the stream. */
  readonly outbound: boolean

  /** Outbound: the peer acknowledged. Inbound: we acknowledged (accepted). */
  established = false
  /** We sent FIN. */
  localFin = false
  /** The peer sent FIN. */
  remoteFin = false
  /** RST sent or received: no frame goes out for this stream any more. */
  reset = false
  /** Still in the session's stream table. */
  attached = true
  /** @internal Inbound: our ACK rides on the next frame this stream sends. */
  ackDeferred = false
  /** @internal Inbound: deferAck() was called; no bare ACK is sent for this stream. */
  ackHeld = false

  /** Bytes we may still send before the peer's next window update. */
  sendWindow = INITIAL_STREAM_WINDOW
  /** The receive window we currently grant, in bytes (auto-tuned up to maxStreamWindowBytes). */
  recvWindow = INITIAL_STREAM_WINDOW
  /** Total bytes the peer may send over the stream's life so far (initial window plus updates). */
  recvLimit = INITIAL_STREAM_WINDOW
  /** Total payload bytes received. */
  received = 0

  /** @internal open-acknowledgement deadline. */
  openTimer: TimerHandle | undefined
  private closeTimer: TimerHandle | undefined
  private writeTimer: TimerHandle | undefined
  private lastUpdateAt: number
  private writeTimeoutMs: number

  /** Payload received this turn, not yet pushed (see onData). */
  private inbox: Buffer[] | undefined
  private inboxBytes = 0
  private pendingChunk: Buffer | undefined
  private pendingOffset = 0
  private pendingCallback: ((err?: Error | null) => void) | undefined
  private waiting = WAIT_NONE
  private closeWaiter: { resolve: () => void; reject: (e: Error) => void } | undefined

  constructor(
    private readonly host: StreamHost,
    id: number,
    outbound: boolean,
  ) {
    super({
      allowHalfOpen: true,
      readableHighWaterMark: STREAM_HIGH_WATER_MARK,
      writableHighWaterMark: STREAM_HIGH_WATER_MARK,
    })
    this.id = id
    this.outbound = outbound
    this.lastUpdateAt = host.now()
    this.writeTimeoutMs = host.config.streamWriteTimeoutMs
  }

  /**
   * Inbound streams, called synchronously in the session's 'stream' event: instead of a bare
   * ACK frame now, set the ACK flag on the first frame this stream sends (spec: the ACK "may"
   * ride on a data or window update frame). For a server that answers every stream soon
   * anyway (the agent's status byte), it saves a frame, a TLS record and a peer wake-up per
   * stream. The peer's open stays unacknowledged until then, so answer within its open timeout.
   */
  deferAck(): this {
    if (this.ackDeferred) this.ackHeld = true
    return this
  }

  /** The ACK flag once, for the first frame of a stream whose ACK was deferred. */
  private takeAck(): number {
    if (!this.ackDeferred) return 0
    this.ackDeferred = false
    return Flag.ACK
  }

  /** Limit, in milliseconds, for one write to wait on window or transport; 0 = none. */
  setWriteTimeout(ms: number): this {
    this.writeTimeoutMs = ms
    return this
  }

  /**
   * Ends our side (FIN) and waits for the peer's FIN; resets the stream if that does not come
   * within `timeoutMs` (default: streamCloseTimeoutMs). A plain end() is a half-close that may
   * last as long as the peer keeps sending.
   */
  close(opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<void> {
    if (this.remoteFin && this.localFin) return Promise.resolve()
    if (this.destroyed) {
      return Promise.reject(
        new HopgateError('HOPGATE_ERR_YAMUX_SESSION_SHUTDOWN', 'stream destroyed'),
      )
    }
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        this.closeWaiter = undefined
        reject(abortError(opts.signal!))
        this.destroy()
      }
      opts.signal?.addEventListener('abort', onAbort, { once: true })
      const done = (): void => opts.signal?.removeEventListener('abort', onAbort)
      this.closeWaiter = {
        resolve: () => (done(), resolve()),
        reject: (e) => (done(), reject(e)),
      }
      this.closeTimer = this.host.setTimer(() => {
        this.destroy(new HopgateError('HOPGATE_ERR_YAMUX_CLOSE_TIMEOUT', `stream ${this.id}`))
      }, opts.timeoutMs ?? this.host.config.streamCloseTimeoutMs)
      this.end()
    })
  }

  /** Credit what the consumer has taken out of the readable buffer. */
  override read(size?: number): any {
    const chunk: unknown = super.read(size)
    if (chunk !== null) this.creditConsumed()
    return chunk
  }

  override _read(): void {
    // Data arrives from the session as frames; the window, not _read, paces the peer.
  }

  // ---- receive side (called by the session) ----

  /**
   * @internal Payload is pushed once per event-loop turn, not per piece: a TLS transport hands
   * us 16 KiB records, and a frame split across two of them arrives as two pieces (often one
   * tiny). Pushed one by one, every piece became one 'data' event and one write downstream; a
   * relay re-framed them, and the next hop split them again. One push per turn keeps chunks
   * as big as what the transport delivered in that turn.
   */
  onData(chunk: Buffer): void {
    this.received += chunk.length
    if (this.destroyed || this.readableEnded) return
    if (this.inbox === undefined) {
      this.inbox = [chunk]
      this.host.deliverLater(this)
    } else {
      this.inbox.push(chunk)
    }
    this.inboxBytes += chunk.length
  }

  /** @internal Pushes what onData collected: at the end of the turn, or before a FIN or RST. */
  deliver(): void {
    const inbox = this.inbox
    if (inbox === undefined) return
    this.inbox = undefined
    const n = this.inboxBytes
    this.inboxBytes = 0
    if (this.destroyed || this.readableEnded) return
    this.push(inbox.length === 1 ? inbox[0]! : Buffer.concat(inbox, n))
    this.creditConsumed()
  }

  /** @internal */
  onAck(): void {
    this.established = true
    this.host.clearTimer(this.openTimer)
    this.openTimer = undefined
  }

  /** @internal */
  onWindowUpdate(delta: number): void {
    this.sendWindow += delta
    if (this.waiting === WAIT_WINDOW) this.flush()
  }

  /** @internal */
  onDrain(): void {
    if (this.waiting === WAIT_DRAIN) this.flush()
  }

  /** @internal */
  onRemoteFin(): void {
    if (this.remoteFin) return
    this.deliver()
    this.remoteFin = true
    this.push(null)
    if (this.localFin) this.finishClose()
  }

  /** @internal */
  onRemoteReset(): void {
    // What arrived before the RST reaches a flowing reader first, as it did before batching.
    this.deliver()
    this.reset = true
    // A stream still waiting in the accept queue was never handed out: nobody listens for errors.
    if (!this.outbound && !this.established) return void this.destroy()
    const code = this.established
      ? 'HOPGATE_ERR_YAMUX_STREAM_RESET'
      : 'HOPGATE_ERR_YAMUX_STREAM_REFUSED'
    this.destroy(new HopgateError(code, `stream ${this.id}`))
  }

  /** @internal The session is gone: no frames, just tear down. */
  abort(err: Error | undefined): void {
    this.reset = true
    this.destroy(!this.outbound && !this.established ? undefined : err)
  }

  /** @internal The open was not acknowledged in time. */
  openTimedOut(): void {
    this.openTimer = undefined
    this.destroy(new HopgateError('HOPGATE_ERR_YAMUX_OPEN_TIMEOUT', `stream ${this.id}`))
  }

  private creditConsumed(): void {
    if (this.remoteFin || this.reset) return
    // Bytes still in the inbox are received but not yet readable: not consumed either.
    const consumed = this.received - this.inboxBytes - this.readableLength
    let delta = consumed + this.recvWindow - this.recvLimit
    if (delta < this.recvWindow / 2) return
    const config = this.host.config
    const now = this.host.now()
    // A half window consumed within a few round trips means the window, not the reader, limits
    // the stream: grow it. A slow reader never triggers this, so it never gets a big window.
    if (
      this.recvWindow < config.maxStreamWindowBytes &&
      now - this.lastUpdateAt < 4 * Math.max(this.host.rttMs, 1)
    ) {
      this.recvWindow = Math.min(this.recvWindow * 2, config.maxStreamWindowBytes)
      delta = consumed + this.recvWindow - this.recvLimit
    }
    this.lastUpdateAt = now
    this.recvLimit += delta
    this.host.sendFrame(FrameType.WindowUpdate, this.takeAck(), this.id, delta)
  }

  // ---- send side ----

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.pendingChunk = chunk
    this.pendingOffset = 0
    this.pendingCallback = cb
    this.flush()
  }

  private flush(): void {
    const chunk = this.pendingChunk
    if (chunk === undefined || this.reset) return
    const host = this.host
    const max = host.config.maxDataFrameBytes
    while (this.pendingOffset < chunk.length) {
      if (host.congested) return this.park(WAIT_DRAIN)
      const n = Math.min(this.sendWindow, chunk.length - this.pendingOffset, max)
      if (n === 0) return this.park(WAIT_WINDOW)
      const piece =
        n === chunk.length ? chunk : chunk.subarray(this.pendingOffset, this.pendingOffset + n)
      this.sendWindow -= n
      this.pendingOffset += n
      host.sendData(this.id, this.takeAck(), piece)
    }
    const cb = this.pendingCallback!
    this.pendingChunk = undefined
    this.pendingCallback = undefined
    this.waiting = WAIT_NONE
    if (this.writeTimer !== undefined) {
      host.clearTimer(this.writeTimer)
      this.writeTimer = undefined
    }
    cb()
  }

  private park(kind: number): void {
    this.waiting = kind
    if (kind === WAIT_DRAIN) this.host.waitForDrain(this)
    if (this.writeTimeoutMs > 0 && this.writeTimer === undefined) {
      this.writeTimer = this.host.setTimer(() => {
        this.writeTimer = undefined
        this.destroy(new HopgateError('HOPGATE_ERR_YAMUX_WRITE_TIMEOUT', `stream ${this.id}`))
      }, this.writeTimeoutMs)
    }
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (!this.reset) {
      this.localFin = true
      this.host.sendFrame(FrameType.WindowUpdate, Flag.FIN | this.takeAck(), this.id, 0)
      if (this.remoteFin) this.finishClose()
    }
    cb()
  }

  private finishClose(): void {
    this.host.clearTimer(this.closeTimer)
    this.closeTimer = undefined
    const waiter = this.closeWaiter
    this.closeWaiter = undefined
    this.host.release(this)
    waiter?.resolve()
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    const host = this.host
    host.clearTimer(this.openTimer)
    host.clearTimer(this.closeTimer)
    host.clearTimer(this.writeTimer)
    this.openTimer = this.closeTimer = this.writeTimer = undefined
    if (!this.reset && !(this.localFin && this.remoteFin)) {
      this.reset = true
      host.sendFrame(FrameType.WindowUpdate, Flag.RST | this.takeAck(), this.id, 0)
    }
    host.release(this)
    const pending = this.pendingCallback
    this.pendingChunk = this.pendingCallback = undefined
    this.waiting = WAIT_NONE
    const waiter = this.closeWaiter
    this.closeWaiter = undefined
    if (waiter || pending) {
      // Built only when someone waits: an Error's stack trace costs more than the rest of a close.
      const failure =
        err ?? new HopgateError('HOPGATE_ERR_YAMUX_SESSION_SHUTDOWN', 'stream destroyed')
      waiter?.reject(failure)
      pending?.(failure)
    }
    cb(err)
  }
}
