// A yamux session over one reliable byte stream (TCP, TLS, in-memory), in either role: the
// stream table, the frame dispatch, opens and accepts with their backlog, GoAway, ping and
// keepalive, and the one writer to the transport (batched per tick, paced by its 'drain').
// It does not authenticate, route or name anything above stream ids: that is the tunnel's job.
import { EventEmitter } from 'node:events'
import type { Duplex } from 'node:stream'
import { HopgateError, isHopgateError, type ErrorCode } from '../errors.js'
import { systemClock, TimerGroup, type Clock, type TimerHandle } from '../clock.js'
import { verifyConfig, type YamuxConfig } from './config.js'
import { Decoder, type FrameSink } from './decoder.js'
import {
  encodeHeader,
  Flag,
  FrameType,
  GoAwayCode,
  MAX_STREAM_ID,
  MAX_WINDOW,
  type FrameHeader,
} from './frame.js'
import { YamuxStream, type StreamHost } from './stream.js'
import { Pinger } from './ping.js'
import { WaitQueue } from './waiters.js'

export interface SessionOptions {
  /** 'client' opens odd stream ids, 'server' even ones (spec: "Stream ID Field"). */
  role: 'client' | 'server'
  config?: Partial<YamuxConfig>
  clock?: Clock
}

export interface SessionStats {
  streams: number
  acceptQueue: number
  unacknowledgedOpens: number
  openWaiters: number
  pendingPings: number
  timers: number
  drainWaiters: number
  congested: boolean
  rttMs: number
}

/** Peer-closed stream ids remembered to tell a late frame from a hostile one. */
const TOMBSTONES = 1024

/** Batches smaller than this are copied into one buffer (Node's pool serves it without a new allocation). */
const COALESCE_BYTES = 4096

/** Events a session emits, with their arguments. */
export interface SessionEvents {
  /** An inbound stream, accepted; its ACK goes out now unless the listener calls deferAck(). */
  stream: [stream: YamuxStream]
  /** The peer sent GoAway with this code: open no more streams. */
  goaway: [code: number]
  /** The peer broke the protocol or stopped answering; 'close' follows. Emitted only if listened to. */
  error: [err: HopgateError]
  /** The session is over; `err` is why, undefined for a normal close. */
  close: [err: Error | undefined]
}

export class Session extends EventEmitter<SessionEvents> implements StreamHost {
  readonly role: 'client' | 'server'
  readonly config: YamuxConfig
  readonly clock: Clock
  /** True while the transport has refused more writes; streams wait for its 'drain'. */
  congested = false
  /** The GoAway code the peer sent, if it did. */
  remoteGoAway: number | undefined
  /** Why the session closed (undefined for a normal close). */
  closeError: Error | undefined
  closed = false

  private readonly transport: Duplex
  private readonly decoder: Decoder
  private readonly timers: TimerGroup
  private readonly streams = new Map<number, YamuxStream>()
  private readonly tombstones = new Map<number, 'fin' | 'rst'>()
  private readonly drainWaiters = new Set<YamuxStream>()
  private readonly acceptQueue: YamuxStream[] = []
  private readonly acceptWaiters: WaitQueue<YamuxStream>
  private readonly openWaiters: WaitQueue<void>
  private readonly pinger: Pinger
  private nextStreamId: number
  private lastRemoteId = 0
  private unacknowledged = 0
  private refusedOpens = 0
  private localGoAway = false
  /** Frames written this event-loop turn, handed to the transport together after its I/O. */
  private outQueue: Buffer[] = []
  private outBytes = 0
  private rxStream: YamuxStream | undefined
  /** Streams with payload collected this turn (YamuxStream.onData), pushed after its I/O. */
  private inboxes: YamuxStream[] = []
  private stallTimer: TimerHandle | undefined

  constructor(transport: Duplex, options: SessionOptions) {
    super()
    this.role = options.role
    this.config = verifyConfig(options.config)
    this.clock = options.clock ?? systemClock
    this.timers = new TimerGroup(this.clock)
    this.transport = transport
    this.nextStreamId = options.role === 'client' ? 1 : 2
    this.decoder = new Decoder(this.sink(), this.config.maxStreamWindowBytes)
    this.acceptWaiters = new WaitQueue(this.timers)
    this.openWaiters = new WaitQueue(this.timers)
    this.pinger = new Pinger(
      {
        isClosed: () => this.closed,
        sendPing: (opaque) => this.sendFrame(FrameType.Ping, Flag.SYN, 0, opaque),
        keepAliveFailed: (err) => this.fail(err),
      },
      this.config,
      this.clock,
      this.timers,
    )
    transport.on('data', this.onTransportData)
    transport.on('drain', this.onTransportDrain)
    transport.on('error', this.onTransportError)
    transport.on('end', this.onTransportEnd)
    transport.on('close', this.onTransportEnd)
    this.pinger.startKeepAlive()
  }

  // ---- public API ----

  /** Opens a stream now; data may be written before the peer acknowledges (spec: 0-RTT). */
  openStream(): YamuxStream {
    this.checkCanOpen()
    if (this.unacknowledged >= this.config.acceptBacklog) {
      throw new HopgateError('HOPGATE_ERR_YAMUX_BACKLOG_FULL', `${this.unacknowledged} pending`)
    }
    return this.createOutbound()
  }

  /** Opens a stream, first waiting for a backlog slot if the peer is slow to acknowledge. */
  async open(opts: { signal?: AbortSignal } = {}): Promise<YamuxStream> {
    for (;;) {
      opts.signal?.throwIfAborted()
      this.checkCanOpen()
      if (this.unacknowledged < this.config.acceptBacklog) return this.createOutbound()
      await this.openWaiters.wait(
        opts.signal,
        this.config.streamOpenTimeoutMs,
        'HOPGATE_ERR_YAMUX_OPEN_TIMEOUT',
      )
    }
  }

  /** Takes the next inbound stream (pull mode: used when no 'stream' listener is attached). */
  async accept(opts: { signal?: AbortSignal } = {}): Promise<YamuxStream> {
    opts.signal?.throwIfAborted()
    const queued = this.acceptQueue.shift()
    if (queued) {
      this.acknowledge(queued)
      return queued
    }
    if (this.closed) throw this.shutdownError()
    return this.acceptWaiters.wait(opts.signal, 0, 'HOPGATE_ERR_YAMUX_SESSION_SHUTDOWN')
  }

  /** Round-trip time of one Ping, in milliseconds. */
  ping(opts: { signal?: AbortSignal } = {}): Promise<number> {
    if (this.closed) return Promise.reject(this.shutdownError())
    return this.pinger.ping(opts.signal)
  }

  /** Smoothed RTT from pings, in milliseconds; 0 until the first pong. */
  get rttMs(): number {
    return this.pinger.rttMs
  }

  /** Tells the peer no new streams will be accepted; existing streams go on. */
  goAway(code: GoAwayCode = GoAwayCode.Normal): void {
    if (this.closed || this.localGoAway) return
    this.localGoAway = true
    this.sendFrame(FrameType.GoAway, 0, 0, code)
    this.acceptWaiters.rejectAll(new HopgateError('HOPGATE_ERR_YAMUX_GOING_AWAY'))
  }

  /**
   * Closes the session: GoAway (normal, or the error's code), every stream torn down, the
   * transport ended after what was queued for it is written.
   */
  close(err?: Error): void {
    if (this.closed) return
    this.closed = true
    this.closeError = err
    this.decoder.stop()
    if (!this.localGoAway) {
      this.localGoAway = true
      const code =
        err instanceof HopgateError
          ? (err.goAway ?? GoAwayCode.InternalError)
          : err
            ? GoAwayCode.InternalError
            : GoAwayCode.Normal
      this.writeRaw(encodeHeader(FrameType.GoAway, 0, 0, code))
    }
    this.timers.clearAll()
    const shutdown = this.shutdownError()
    this.pinger.stop(shutdown)
    this.acceptWaiters.rejectAll(shutdown)
    this.openWaiters.rejectAll(shutdown)
    // Payload that arrived before the end reaches the readers, as it did before batching.
    this.deliverInboxes()
    const streams = [...this.streams.values()]
    this.streams.clear()
    this.acceptQueue.length = 0
    this.drainWaiters.clear()
    for (const stream of streams) stream.abort(err ? shutdown : undefined)
    const t = this.transport
    t.off('data', this.onTransportData)
    t.off('drain', this.onTransportDrain)
    this.stallTimer = undefined
    // Frames still queued for this turn's flush (a goAway() just before, the streams' resets)
    // must reach the transport before it is ended, or the peer never sees them.
    this.flushOut()
    // A transport that took nothing for connectionWriteTimeoutMs will not flush a goodbye either.
    if (t.destroyed || isHopgateError(err, 'HOPGATE_ERR_YAMUX_CONNECTION_WRITE_TIMEOUT')) {
      t.destroy()
    } else {
      t.end()
      // A peer that never reads must not pin the socket: the flush gets a bounded time.
      const forced = this.clock.setTimeout(() => t.destroy(), this.config.connectionWriteTimeoutMs)
      t.once('close', () => this.clock.clearTimeout(forced))
    }
    process.nextTick(() => this.emit('close', err))
  }

  get streamCount(): number {
    return this.streams.size
  }

  stats(): SessionStats {
    return {
      streams: this.streams.size,
      acceptQueue: this.acceptQueue.length,
      unacknowledgedOpens: this.unacknowledged,
      openWaiters: this.openWaiters.length,
      pendingPings: this.pinger.outstanding,
      timers: this.timers.size,
      drainWaiters: this.drainWaiters.size,
      congested: this.congested,
      rttMs: this.rttMs,
    }
  }

  // ---- StreamHost ----

  now(): number {
    return this.clock.now()
  }

  setTimer(fn: () => void, ms: number): TimerHandle {
    return this.timers.set(fn, ms)
  }

  clearTimer(handle: TimerHandle | undefined): void {
    this.timers.clear(handle)
  }

  sendFrame(type: FrameType, flags: number, streamId: number, length: number): void {
    if (this.closed) return
    this.writeRaw(encodeHeader(type, flags, streamId, length))
  }

  sendData(streamId: number, flags: number, payload: Buffer): void {
    if (this.closed) return
    this.writeRaw(encodeHeader(FrameType.Data, flags, streamId, payload.length))
    this.writeRaw(payload)
  }

  waitForDrain(stream: YamuxStream): void {
    this.drainWaiters.add(stream)
  }

  deliverLater(stream: YamuxStream): void {
    if (this.inboxes.push(stream) === 1) setImmediate(deliverInboxes, this)
  }

  /** @internal Pushes every stream's payload of this turn (also before the streams are aborted). */
  deliverInboxes(): void {
    const streams = this.inboxes
    if (streams.length === 0) return
    this.inboxes = []
    delivering = true
    try {
      for (const stream of streams) stream.deliver()
    } finally {
      delivering = false
    }
  }

  release(stream: YamuxStream): void {
    if (!stream.attached) return
    stream.attached = false
    this.streams.delete(stream.id)
    this.drainWaiters.delete(stream)
    if (stream.outbound && !stream.established) this.settleOpen()
    if (!stream.outbound && !stream.established) {
      const i = this.acceptQueue.indexOf(stream)
      if (i >= 0) this.acceptQueue.splice(i, 1)
    }
  }

  // ---- internals: opening and accepting ----

  private checkCanOpen(): void {
    if (this.closed) throw this.shutdownError()
    if (this.remoteGoAway !== undefined) {
      throw new HopgateError('HOPGATE_ERR_YAMUX_REMOTE_GOAWAY', `code ${this.remoteGoAway}`)
    }
    if (this.localGoAway) throw new HopgateError('HOPGATE_ERR_YAMUX_GOING_AWAY')
  }

  private createOutbound(): YamuxStream {
    if (this.streams.size >= this.config.maxStreams) {
      throw new HopgateError('HOPGATE_ERR_YAMUX_TOO_MANY_STREAMS', `${this.streams.size} open`)
    }
    const id = this.nextStreamId
    if (id > MAX_STREAM_ID) throw new HopgateError('HOPGATE_ERR_YAMUX_STREAMS_EXHAUSTED')
    this.nextStreamId += 2
    const stream = new YamuxStream(this, id, true)
    this.streams.set(id, stream)
    this.unacknowledged++
    stream.openTimer = this.timers.set(() => stream.openTimedOut(), this.config.streamOpenTimeoutMs)
    this.sendFrame(FrameType.WindowUpdate, Flag.SYN, id, 0)
    return stream
  }

  /** An outbound open was acknowledged or ended: a backlog slot is free. */
  private settleOpen(): void {
    this.unacknowledged--
    this.openWaiters.resolveNext()
  }

  private acknowledge(stream: YamuxStream): void {
    stream.established = true
    this.refusedOpens = 0
    this.sendFrame(FrameType.WindowUpdate, Flag.ACK, stream.id, 0)
  }

  private isRemoteId(id: number): boolean {
    return (id & 1) === (this.role === 'server' ? 1 : 0)
  }

  private incoming(h: FrameHeader): YamuxStream | undefined {
    const id = h.streamId
    if (!this.isRemoteId(id))
      return this.violation('HOPGATE_ERR_YAMUX_BAD_STREAM_ID', `SYN on our id ${id}`)
    if (this.streams.has(id))
      return this.violation('HOPGATE_ERR_YAMUX_DUPLICATE_STREAM', `stream ${id}`)
    if (id <= this.lastRemoteId)
      return this.violation('HOPGATE_ERR_YAMUX_BAD_STREAM_ID', `SYN reuses id ${id}`)
    this.lastRemoteId = id
    if (this.localGoAway || this.streams.size >= this.config.maxStreams) {
      this.refuse(id)
      return undefined
    }
    if (this.acceptQueue.length >= this.config.acceptBacklog) {
      this.refuse(id)
      if (++this.refusedOpens > this.config.acceptBacklog) {
        return this.violation('HOPGATE_ERR_YAMUX_OPEN_FLOOD', `${this.refusedOpens} opens refused`)
      }
      return undefined
    }
    const stream = new YamuxStream(this, id, false)
    this.streams.set(id, stream)
    if (this.listenerCount('stream') > 0) {
      stream.established = true
      this.refusedOpens = 0
      // Frames the listener sends at once carry the ACK; if it sends none, a bare ACK follows,
      // unless it chose to answer later (deferAck): then the ACK rides on its first frame.
      stream.ackDeferred = true
      this.emit('stream', stream)
      if (stream.ackDeferred && !stream.ackHeld) {
        stream.ackDeferred = false
        this.sendFrame(FrameType.WindowUpdate, Flag.ACK, id, 0)
      }
    } else if (this.acceptWaiters.length > 0) {
      this.acknowledge(stream)
      this.acceptWaiters.resolveNext(stream)
    } else {
      this.acceptQueue.push(stream)
    }
    return stream
  }

  private refuse(id: number): void {
    this.sendFrame(FrameType.WindowUpdate, Flag.RST, id, 0)
  }

  // ---- internals: receiving ----

  private sink(): FrameSink {
    return {
      onFrame: (h) => this.onFrame(h),
      onDataStart: (h) => this.onDataStart(h),
      onDataChunk: (_h, chunk) => this.rxStream?.onData(chunk),
      onDataEnd: (h) => {
        const stream = this.rxStream
        this.rxStream = undefined
        if (stream) this.applyCloseFlags(stream, h.flags)
      },
      onError: (err) => this.fail(err),
    }
  }

  /** Finds the stream a frame is for; undefined if the frame is to be dropped (or was fatal). */
  private streamFor(h: FrameHeader): YamuxStream | undefined {
    if (h.flags & Flag.SYN) return this.incoming(h)
    const id = h.streamId
    const stream = this.streams.get(id)
    if (stream) {
      // Any frame but RST proves the peer took the stream; some peers (yamux-js) FIN without ACK.
      if (stream.outbound && !stream.established && !(h.flags & Flag.RST)) {
        stream.onAck()
        this.settleOpen()
      }
      return stream
    }
    const known = this.isRemoteId(id) ? id <= this.lastRemoteId : id < this.nextStreamId
    if (!known)
      return this.violation('HOPGATE_ERR_YAMUX_BAD_STREAM_ID', `stream ${id} was never opened`)
    const tomb = this.tombstones.get(id)
    if (tomb === 'rst' || (tomb === 'fin' && h.type === FrameType.Data && h.length > 0)) {
      return this.violation(
        'HOPGATE_ERR_YAMUX_UNEXPECTED_FRAME',
        `stream ${id} after ${tomb.toUpperCase()}`,
      )
    }
    // A frame crossing our own RST or close in flight: harmless, dropped.
    return undefined
  }

  private onDataStart(h: FrameHeader): void {
    const stream = this.streamFor(h)
    if (!stream || this.closed) return
    if (h.length > 0) {
      if (stream.remoteFin) {
        return void this.violation(
          'HOPGATE_ERR_YAMUX_UNEXPECTED_FRAME',
          `data after FIN on ${h.streamId}`,
        )
      }
      if (stream.received + h.length > stream.recvLimit) {
        return void this.violation(
          'HOPGATE_ERR_YAMUX_RECV_WINDOW_EXCEEDED',
          `stream ${h.streamId}: ${h.length} bytes, window ${stream.recvLimit - stream.received}`,
        )
      }
    }
    this.rxStream = stream
  }

  private onFrame(h: FrameHeader): void {
    switch (h.type) {
      case FrameType.WindowUpdate: {
        const stream = this.streamFor(h)
        if (!stream || this.closed) return
        if (h.length > 0) {
          if (stream.sendWindow + h.length > MAX_WINDOW) {
            return void this.violation('HOPGATE_ERR_YAMUX_WINDOW_OVERFLOW', `stream ${h.streamId}`)
          }
          stream.onWindowUpdate(h.length)
        }
        this.applyCloseFlags(stream, h.flags)
        return
      }
      case FrameType.Ping:
        if (h.flags & Flag.SYN) {
          // A peer that floods pings while not reading our replies gets no more replies.
          if (this.transport.writableLength + this.outBytes < this.config.maxPendingControlBytes) {
            this.sendFrame(FrameType.Ping, Flag.ACK, 0, h.length)
          }
        } else {
          this.pinger.onPong(h.length)
        }
        return
      case FrameType.GoAway:
        this.remoteGoAway = h.length
        this.openWaiters.rejectAll(
          new HopgateError('HOPGATE_ERR_YAMUX_REMOTE_GOAWAY', `code ${h.length}`),
        )
        this.emit('goaway', h.length)
        return
    }
  }

  private applyCloseFlags(stream: YamuxStream, flags: number): void {
    if (flags & Flag.RST) {
      this.tomb(stream.id, 'rst')
      stream.onRemoteReset()
    } else if (flags & Flag.FIN) {
      this.tomb(stream.id, 'fin')
      stream.onRemoteFin()
    }
  }

  private tomb(id: number, kind: 'fin' | 'rst'): void {
    this.tombstones.set(id, kind)
    if (this.tombstones.size > TOMBSTONES) {
      this.tombstones.delete(this.tombstones.keys().next().value!)
    }
  }

  private violation(code: ErrorCode, detail: string): undefined {
    this.fail(new HopgateError(code, detail))
    return undefined
  }

  private fail(err: HopgateError): void {
    if (this.closed) return
    if (this.listenerCount('error') > 0) this.emit('error', err)
    this.close(err)
  }

  // ---- internals: writing ----

  private writeRaw(buf: Buffer): void {
    const t = this.transport
    if (t.destroyed || t.writableEnded) return
    // Flushed after this event-loop turn's I/O callbacks, not after this one callback: frames
    // from many streams' events (opens, acks, small writes) share one TLS record and syscall.
    if (this.outQueue.push(buf) === 1) {
      // Written while payload is being delivered (already after this turn's I/O): a relay
      // writing what it just received. A new setImmediate would wait for the next turn.
      if (delivering) process.nextTick(flushOut, this)
      else setImmediate(flushOut, this)
    }
    this.outBytes += buf.length
    // Past the transport's own high-water mark we keep queueing up to sendBufferBytes: one
    // 'drain' then releases a batch of frames instead of one.
    if (!this.congested && t.writableLength + this.outBytes >= this.config.sendBufferBytes) {
      this.congested = true
      this.stallTimer = this.timers.set(() => {
        this.stallTimer = undefined
        this.fail(new HopgateError('HOPGATE_ERR_YAMUX_CONNECTION_WRITE_TIMEOUT'))
      }, this.config.connectionWriteTimeoutMs)
    }
  }

  /**
   * @internal Hands this tick's frames to the transport. Small batches go as one pooled buffer:
   * a TLS socket copies every multi-buffer write into a fresh backing store (TLSWrap::DoWrite),
   * which costs an allocation and GC pressure per frame; one buffer goes through untouched.
   */
  flushOut(): void {
    const queue = this.outQueue
    const bytes = this.outBytes
    if (queue.length === 0) return
    this.outQueue = []
    this.outBytes = 0
    const t = this.transport
    if (t.destroyed || t.writableEnded) return
    let ok = true
    if (queue.length === 1) {
      ok = t.write(queue[0]!)
    } else if (bytes < COALESCE_BYTES) {
      ok = t.write(Buffer.concat(queue, bytes))
    } else {
      t.cork()
      for (const buf of queue) ok = t.write(buf)
      t.uncork()
    }
    // Queued past sendBufferBytes but the transport took it all below its own high-water mark:
    // it will emit no 'drain', so release the waiting streams now.
    if (ok && this.congested) this.onTransportDrain()
  }

  private readonly onTransportData = (chunk: Buffer): void => {
    this.decoder.push(chunk)
  }

  private readonly onTransportDrain = (): void => {
    if (!this.congested) return
    this.congested = false
    this.timers.clear(this.stallTimer)
    this.stallTimer = undefined
    if (this.drainWaiters.size === 0) return
    const waiters = [...this.drainWaiters]
    this.drainWaiters.clear()
    // If one stream fills the transport again, the rest keep their turn for the next drain.
    for (const stream of waiters) {
      if (this.congested) this.drainWaiters.add(stream)
      else stream.onDrain()
    }
  }

  private readonly onTransportError = (err: Error): void => {
    if (this.closed) return
    this.close(
      new HopgateError('HOPGATE_ERR_YAMUX_SESSION_SHUTDOWN', 'transport failed', { cause: err }),
    )
  }

  private readonly onTransportEnd = (): void => {
    if (this.closed) return
    const clean = this.remoteGoAway !== undefined && this.streams.size === 0
    this.close(
      clean
        ? undefined
        : new HopgateError('HOPGATE_ERR_YAMUX_SESSION_SHUTDOWN', 'transport closed'),
    )
  }

  // ---- internals: helpers ----

  private shutdownError(): HopgateError {
    return new HopgateError('HOPGATE_ERR_YAMUX_SESSION_SHUTDOWN', undefined, {
      cause: this.closeError,
    })
  }
}

function flushOut(session: Session): void {
  session.flushOut()
}

/** True while some session pushes a turn's payload (see writeRaw). */
let delivering = false

function deliverInboxes(session: Session): void {
  session.deliverInboxes()
}
