// What a user sends before the agent's open status: written to the stream right after the
// stream-open header (PROTOCOL.md allows it; the agent reads it only after status 0), so a new
// connection's first bytes do not wait a tunnel round trip, and kept until the status so an open
// retried on another stream (stale epoch, another edge) sends them again. Bounded: past maxBytes
// the socket is paused until the status. It decides nothing about routing; the opener does.
import type { Socket } from 'node:net'
import type { Writable } from 'node:stream'

/** Bytes read from a user before the status, at most, per connection. @default 64 KiB */
export const EARLY_DATA_MAX_BYTES = 64 * 1024

/** The part the opener and the forwarder use: send what came so far, and what comes next. */
export interface EarlySender {
  /** Writes every byte so far to `stream` (after its header), then each new one, until commit. */
  attach(stream: Writable): void
}

export class EarlyData implements EarlySender {
  private chunks: Buffer[] = []
  private bytes = 0
  private target: Writable | undefined
  private ended = false
  private done = false

  constructor(
    private readonly socket: Socket,
    private readonly maxBytes = EARLY_DATA_MAX_BYTES,
  ) {
    socket.on('data', this.onData)
    socket.once('end', this.onEnd)
    socket.resume()
  }

  attach(stream: Writable): void {
    if (this.done) return
    this.target = stream
    for (const c of this.chunks) stream.write(c)
  }

  /**
   * The attached stream's status was ok: stop reading here and drop the copies. The socket is
   * left paused for the bridge; `ended` says the user's FIN came already (the bridge will not see
   * it again, so the caller ends the stream after bridging).
   */
  commit(): { ended: boolean } {
    this.stop()
    return { ended: this.ended }
  }

  /** The open failed: stop reading and drop the copies (the caller closes the socket). */
  release(): void {
    this.stop()
  }

  private stop(): void {
    if (this.done) return
    this.done = true
    this.socket.off('data', this.onData)
    this.socket.off('end', this.onEnd)
    this.socket.pause()
    this.chunks = []
    this.target = undefined
  }

  private readonly onData = (chunk: Buffer): void => {
    this.chunks.push(chunk)
    this.bytes += chunk.length
    // A stream already reset (a refused attempt) swallows the write; the next attach replays.
    if (this.target && !this.target.destroyed) this.target.write(chunk)
    if (this.bytes >= this.maxBytes) this.socket.pause()
  }

  private readonly onEnd = (): void => {
    this.ended = true
  }
}
