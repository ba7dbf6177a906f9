// A push decoder for yamux frames: bytes in, frame events out, no sockets and no copies of
// payload (Data payload is handed on as slices of the input, however the input was chunked).
// It judges what a header alone can show (version, type, session-vs-stream ids, size); stream
// state (windows, who opened what) is the session's business.
import { HopgateError } from '../errors.js'
import {
  decodeHeader,
  FrameType,
  HEADER_LENGTH,
  PROTOCOL_VERSION,
  type FrameHeader,
} from './frame.js'

export interface FrameSink {
  /** A complete non-Data frame (WindowUpdate, Ping, GoAway). */
  onFrame(header: FrameHeader): void
  /** A Data frame's header, before any of its payload. */
  onDataStart(header: FrameHeader): void
  /** The next piece of the current Data frame's payload; pieces add up to `header.length`. */
  onDataChunk(header: FrameHeader, chunk: Buffer): void
  /** The current Data frame is complete (also for zero-length Data frames). */
  onDataEnd(header: FrameHeader): void
  /** The input broke the protocol; the decoder ignores all further input. */
  onError(error: HopgateError): void
}

export class Decoder {
  private readonly stash = Buffer.alloc(HEADER_LENGTH)
  private stashed = 0
  private current: FrameHeader | undefined
  private remaining = 0
  private stopped = false

  /**
   * @param maxDataLength largest Data payload accepted, in bytes; anything longer is refused on
   *   its header, so a hostile length never makes anyone buffer for it.
   */
  constructor(
    private readonly sink: FrameSink,
    private readonly maxDataLength: number,
  ) {}

  /** Stops decoding; later input is ignored. */
  stop(): void {
    this.stopped = true
  }

  get isStopped(): boolean {
    return this.stopped
  }

  /** True between frames (no partial header or payload held). */
  get atFrameBoundary(): boolean {
    return this.stashed === 0 && this.remaining === 0
  }

  push(chunk: Buffer): void {
    const length = chunk.length
    let offset = 0
    while (offset < length && !this.stopped) {
      if (this.remaining > 0) {
        const header = this.current!
        const n = Math.min(this.remaining, length - offset)
        const piece = n === length ? chunk : chunk.subarray(offset, offset + n)
        offset += n
        this.remaining -= n
        this.sink.onDataChunk(header, piece)
        if (this.remaining === 0 && !this.stopped) {
          this.current = undefined
          this.sink.onDataEnd(header)
        }
        continue
      }
      let header: FrameHeader
      if (this.stashed === 0 && length - offset >= HEADER_LENGTH) {
        header = decodeHeader(chunk, offset)
        offset += HEADER_LENGTH
      } else {
        const n = Math.min(HEADER_LENGTH - this.stashed, length - offset)
        chunk.copy(this.stash, this.stashed, offset, offset + n)
        this.stashed += n
        offset += n
        if (this.stashed < HEADER_LENGTH) return
        this.stashed = 0
        header = decodeHeader(this.stash, 0)
      }
      const error = this.check(header)
      if (error) {
        this.stopped = true
        this.sink.onError(error)
        return
      }
      if (header.type === FrameType.Data) {
        this.sink.onDataStart(header)
        if (this.stopped) return
        if (header.length > 0) {
          this.current = header
          this.remaining = header.length
        } else {
          this.sink.onDataEnd(header)
        }
      } else {
        this.sink.onFrame(header)
      }
    }
  }

  private check(h: FrameHeader): HopgateError | undefined {
    if (h.version !== PROTOCOL_VERSION) {
      return new HopgateError('HOPGATE_ERR_YAMUX_BAD_VERSION', `version ${h.version}`)
    }
    if (h.type > FrameType.GoAway) {
      return new HopgateError('HOPGATE_ERR_YAMUX_BAD_TYPE', `type ${h.type}`)
    }
    if (h.flags > 0xf) {
      return new HopgateError('HOPGATE_ERR_YAMUX_BAD_FLAGS', `flags 0x${h.flags.toString(16)}`)
    }
    const sessionFrame = h.type === FrameType.Ping || h.type === FrameType.GoAway
    if (sessionFrame && h.streamId !== 0) {
      return new HopgateError(
        'HOPGATE_ERR_YAMUX_BAD_STREAM_ID',
        `type ${h.type} on stream ${h.streamId}`,
      )
    }
    if (!sessionFrame && h.streamId === 0) {
      return new HopgateError('HOPGATE_ERR_YAMUX_BAD_STREAM_ID', `type ${h.type} on stream 0`)
    }
    if (h.type === FrameType.Data && h.length > this.maxDataLength) {
      return new HopgateError(
        'HOPGATE_ERR_YAMUX_FRAME_TOO_LARGE',
        `${h.length} bytes, at most ${this.maxDataLength}`,
      )
    }
    if (h.type === FrameType.Ping && (h.flags & 0x3) === 0) {
      return new HopgateError('HOPGATE_ERR_YAMUX_BAD_FLAGS', 'ping without SYN or ACK')
    }
    return undefined
  }
}

export interface DecodedFrame {
  header: FrameHeader
  /** Data payload (empty for other types). */
  payload: Buffer
}

/** Decodes whole frames from a buffer; for tests and tools, not the hot path. */
export function decodeFrames(
  bytes: Buffer,
  maxDataLength = 2 ** 31 - 1,
): { frames: DecodedFrame[]; error?: HopgateError; partial: boolean } {
  const frames: DecodedFrame[] = []
  let pieces: Buffer[] = []
  let error: HopgateError | undefined
  const decoder = new Decoder(
    {
      onFrame: (header) => frames.push({ header, payload: Buffer.alloc(0) }),
      onDataStart: () => {
        pieces = []
      },
      onDataChunk: (_h, chunk) => pieces.push(chunk),
      onDataEnd: (header) => frames.push({ header, payload: Buffer.concat(pieces) }),
      onError: (e) => {
        error = e
      },
    },
    maxDataLength,
  )
  decoder.push(bytes)
  return error ? { frames, error, partial: false } : { frames, partial: !decoder.atFrameBoundary }
}
