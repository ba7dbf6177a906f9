// hopgate's yamux: hashicorp/yamux spec.md, wire-compatible with other implementations, with
// streams as Node Duplexes. See docs/PROTOCOL.md for the wire and docs/LIMITS.md for the limits.
export { Session, type SessionEvents, type SessionOptions, type SessionStats } from './session.js'
export { YamuxStream } from './stream.js'
export { defaultConfig, verifyConfig, type YamuxConfig } from './config.js'
export { Decoder, decodeFrames, type FrameSink, type DecodedFrame } from './decoder.js'
export {
  encodeFrame,
  encodeHeader,
  decodeHeader,
  Flag,
  FrameType,
  GoAwayCode,
  HEADER_LENGTH,
  INITIAL_STREAM_WINDOW,
  MAX_WINDOW,
  PROTOCOL_VERSION,
  type FrameHeader,
} from './frame.js'
