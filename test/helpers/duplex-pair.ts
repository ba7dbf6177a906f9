// An in-memory socket pair: what one side writes, the other reads, asynchronously and with
// backpressure (a write's callback waits until the peer's reader has room), like a real socket.
import { Duplex } from 'node:stream'

class PairEnd extends Duplex {
  peer!: PairEnd
  private pendingCallback: ((err?: Error | null) => void) | undefined

  constructor(highWaterMark: number) {
    super({ allowHalfOpen: true, highWaterMark })
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    // Deliver on a later tick: a socket never calls the peer's handlers inside write().
    process.nextTick(() => {
      if (this.peer.destroyed) return cb()
      if (this.peer.push(chunk)) cb()
      else this.peer.pendingWriterCallback(cb)
    })
  }

  override _final(cb: (err?: Error | null) => void): void {
    process.nextTick(() => {
      if (!this.peer.destroyed) this.peer.push(null)
      cb()
    })
  }

  pendingWriterCallback(cb: (err?: Error | null) => void): void {
    this.pendingCallback = cb
  }

  override _read(): void {
    const cb = this.pendingCallback
    this.pendingCallback = undefined
    cb?.()
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    const pending = this.pendingCallback
    this.pendingCallback = undefined
    pending?.()
    // A closed socket ends its peer too, as a TCP RST or FIN would.
    process.nextTick(() => {
      if (!this.peer.destroyed) this.peer.destroy()
    })
    cb(err)
  }
}

/** Returns two connected ends. `highWaterMark` bounds what each side buffers (bytes). */
export function duplexPair(highWaterMark = 64 * 1024): [Duplex, Duplex] {
  const a = new PairEnd(highWaterMark)
  const b = new PairEnd(highWaterMark)
  a.peer = b
  b.peer = a
  return [a, b]
}
