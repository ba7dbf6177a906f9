// What edge and agent speak above yamux: the stream-open header, the open status byte and the
// control stream, as pure codecs (no sockets, no sessions). Wire spec: docs/PROTOCOL.md; limits:
// docs/LIMITS.md "Tunnel wire". Acting on what they decode is the edge's and agent's business.
export {
  encodeOpenHeader,
  tryDecodeOpenHeader,
  OpenHeaderReader,
  EXTENSION_MAY_IGNORE,
  MAX_OPEN_HEADER_BYTES,
  MIN_OPEN_HEADER_BODY,
  OPEN_HEADER_VERSION,
  SERVICE_CODES,
  type OpenHeader,
  type OpenHeaderResult,
  type Service,
} from './open-header.js'
export {
  OpenStatus,
  OPEN_STATUS_NAMES,
  encodeOpenStatus,
  errorToStatus,
  isOpenStatus,
  openStatusName,
  statusToError,
} from './open-status.js'
export {
  ControlDecoder,
  ControlEncoder,
  encodeControl,
  parseControl,
  CONTROL_LENGTH_BYTES,
  MAX_CONTROL_MESSAGE_BYTES,
  type ControlSink,
  type Unsequenced,
} from './control.js'
export * from './control-schema.js'
export {
  formatClientAddress,
  isClientAddress,
  isHostPort,
  isNodeId,
  isProjectId,
  isTraceId,
  MAX_CLIENT_ADDRESS_BYTES,
  MAX_TRACE_ID_BYTES,
} from './fields.js'
