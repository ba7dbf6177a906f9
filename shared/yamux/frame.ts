// The yamux frame header of hashicorp/yamux spec.md: constants, the 12-byte layout and its pure
// encoder. Decoding a byte stream into frames lives in decoder.ts; nothing here touches a socket.

/** The only protocol version the spec defines. */
export const PROTOCOL_VERSION = 0

/** Every frame starts with this many header bytes. */
export const HEADER_LENGTH = 12

/** Both sides assume this receive window for every new stream (spec: "256KB"). */
export const INITIAL_STREAM_WINDOW = 256 * 1024

/** A window never exceeds a signed 32-bit integer (hashicorp tracks windows as uint32). */
export const MAX_WINDOW = 2 ** 31 - 1

/** Stream ids are 32-bit; 0 is the session itself. */
export const MAX_STREAM_ID = 2 ** 32 - 1

export const FrameType = {
  /** Carries stream bytes; the length is the payload length. */
  Data: 0,
  /** Grows the peer's send window by `length`; also carries SYN/ACK/FIN/RST without data. */
  WindowUpdate: 1,
  /** Measures RTT and keeps the session alive; `length` is an opaque value echoed back. */
  Ping: 2,
  /** Ends the session; `length` is a GoAway code. */
  GoAway: 3,
} as const
export type FrameType = (typeof FrameType)[keyof typeof FrameType]

export const Flag = {
  /** Opens a stream; on a Ping, marks the request. */
  SYN: 0x1,
  /** Accepts a stream; on a Ping, marks the response. */
  ACK: 0x2,
  /** Half-closes the sender's side of a stream. */
  FIN: 0x4,
  /** Resets a stream at once. */
  RST: 0x8,
} as const

export const GoAwayCode = {
  Normal: 0,
  ProtocolError: 1,
  InternalError: 2,
} as const
export type GoAwayCode = (typeof GoAwayCode)[keyof typeof GoAwayCode]

export interface FrameHeader {
  version: number
  type: number
  flags: number
  streamId: number
  length: number
}

/** Writes a header into `target` at `offset` (or a fresh buffer) and returns the buffer. */
export function encodeHeader(
  type: FrameType,
  flags: number,
  streamId: number,
  length: number,
  target: Buffer = Buffer.allocUnsafe(HEADER_LENGTH),
  offset = 0,
): Buffer {
  target[offset] = PROTOCOL_VERSION
  target[offset + 1] = type
  target.writeUInt16BE(flags, offset + 2)
  target.writeUInt32BE(streamId, offset + 4)
  target.writeUInt32BE(length, offset + 8)
  return target
}

/** Reads a header without judging it; see decoder.ts for validation. */
export function decodeHeader(source: Buffer, offset = 0): FrameHeader {
  return {
    version: source[offset]!,
    type: source[offset + 1]!,
    flags: source.readUInt16BE(offset + 2),
    streamId: source.readUInt32BE(offset + 4),
    length: source.readUInt32BE(offset + 8),
  }
}

/** A whole frame as bytes: header plus payload (payload only for Data frames). */
export function encodeFrame(header: Omit<FrameHeader, 'version'>, payload?: Buffer): Buffer {
  const length = header.type === FrameType.Data ? (payload?.length ?? 0) : header.length
  const head = encodeHeader(header.type as FrameType, header.flags, header.streamId, length)
  return payload && payload.length > 0 ? Buffer.concat([head, payload]) : head
}
