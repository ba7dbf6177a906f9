// The stream-open header: the first bytes the edge writes on every yamux stream it opens for a
// user connection (layout and rules: docs/PROTOCOL.md "Stream-open header"). A pure codec: the
// encoder, a stateless `tryDecodeOpenHeader` and a push `OpenHeaderReader` that never holds more
// than 1 KiB. Whether the agent hosts the project or allows the port is the registry's business.
import { HopgateError, type ErrorCode } from '../errors.js'
import {
  isClientAddress,
  isProjectId,
  isTraceId,
  MAX_CLIENT_ADDRESS_BYTES,
  MAX_TRACE_ID_BYTES,
  projectIdFromBytes,
  projectIdToBytes,
} from './fields.js'

export const OPEN_HEADER_VERSION = 1
/** The whole header, length field included, is never longer than this. */
export const MAX_OPEN_HEADER_BYTES = 1024
/** Body bytes (after the u16 length) of a v1 header with empty address and trace id. */
export const MIN_OPEN_HEADER_BODY = 31
/** Extension types with this bit set may be skipped by a decoder that does not know them. */
export const EXTENSION_MAY_IGNORE = 0x80

export type Service = 'ssh' | 'port' | 'raw'

export const SERVICE_CODES = { ssh: 1, port: 2, raw: 3 } as const satisfies Record<Service, number>
const SERVICE_BY_CODE: ReadonlyArray<Service | undefined> = [undefined, 'ssh', 'port', 'raw']

export interface OpenHeader {
  /** Lowercase UUID 8-4-4-4-12; 16 raw bytes on the wire. */
  project: string
  service: Service
  /** 1-65535 for `port`, 0 for `ssh` and `raw`. */
  port: number
  /**
   * The route epoch the edge resolved, 1 to 2^53-1. A u64 on the wire; a number here because
   * epochs grow by one per route change (2^53 is out of reach) and also travel in JSON.
   */
  routeEpoch: number
  /** The user's address: `203.0.113.7:51234` or `[2001:db8::1]:443`, at most 64 bytes. */
  clientAddress: string
  /** 1-64 bytes of [A-Za-z0-9._-], the id under which both sides log this connection. */
  traceId: string
}

export type OpenHeaderResult = { header: OpenHeader; consumed: number } | { need: number }

const fail = (code: ErrorCode, detail: string): HopgateError => new HopgateError(code, detail)

// Offsets from the start of the header (the u16 length is at 0).
const AT_VERSION = 2
const AT_FLAGS = 3
const AT_PROJECT = 4
const AT_SERVICE = 20
const AT_PORT = 21
const AT_EPOCH = 23
const AT_ADDRESS_LENGTH = 31
const MAX_EPOCH = BigInt(Number.MAX_SAFE_INTEGER)
const EMPTY = Buffer.alloc(0)

function checkPort(service: Service, port: number): void {
  const ok = service === 'port' ? port >= 1 && port <= 65535 : port === 0
  if (!ok || !Number.isInteger(port)) {
    throw fail('HOPGATE_ERR_OPEN_HEADER_BAD_PORT', `port ${port} for service ${service}`)
  }
}

/** Validates `h` and returns its v1 encoding; throws HOPGATE_ERR_OPEN_HEADER_* on bad fields. */
export function encodeOpenHeader(h: OpenHeader): Buffer {
  if (!isProjectId(h.project)) {
    throw fail('HOPGATE_ERR_OPEN_HEADER_BAD_PROJECT', JSON.stringify(h.project))
  }
  const code = Object.hasOwn(SERVICE_CODES, h.service) ? SERVICE_CODES[h.service] : undefined
  if (code === undefined) {
    throw fail('HOPGATE_ERR_OPEN_HEADER_UNKNOWN_SERVICE', JSON.stringify(h.service))
  }
  checkPort(h.service, h.port)
  if (!Number.isSafeInteger(h.routeEpoch) || h.routeEpoch < 1) {
    throw fail('HOPGATE_ERR_OPEN_HEADER_BAD_EPOCH', String(h.routeEpoch))
  }
  if (!isClientAddress(h.clientAddress)) {
    throw fail('HOPGATE_ERR_OPEN_HEADER_BAD_ADDRESS', JSON.stringify(h.clientAddress))
  }
  if (!isTraceId(h.traceId)) {
    throw fail('HOPGATE_ERR_OPEN_HEADER_BAD_TRACE_ID', JSON.stringify(h.traceId))
  }
  // Both strings are printable ASCII by now, so their lengths are byte counts.
  const a = h.clientAddress.length
  const t = h.traceId.length
  const total = 2 + MIN_OPEN_HEADER_BODY + a + t
  const buf = Buffer.alloc(total)
  buf.writeUInt16BE(total - 2, 0)
  buf[AT_VERSION] = OPEN_HEADER_VERSION
  buf[AT_FLAGS] = 0
  projectIdToBytes(h.project, buf, AT_PROJECT)
  buf[AT_SERVICE] = code
  buf.writeUInt16BE(h.port, AT_PORT)
  buf.writeBigUInt64BE(BigInt(h.routeEpoch), AT_EPOCH)
  buf[AT_ADDRESS_LENGTH] = a
  buf.write(h.clientAddress, AT_ADDRESS_LENGTH + 1, 'latin1')
  buf[AT_ADDRESS_LENGTH + 1 + a] = t
  buf.write(h.traceId, AT_ADDRESS_LENGTH + 2 + a, 'latin1')
  return buf
}

/**
 * Decodes one header from the start of `buf`, or says how many more bytes it needs at least.
 * Judges what it can as early as it can: an over-long length on the first two bytes, the
 * version on the third, so a hostile peer is refused before anyone waits for its bytes.
 */
export function tryDecodeOpenHeader(buf: Buffer): OpenHeaderResult {
  if (buf.length < 2) return { need: 2 - buf.length }
  const body = buf.readUInt16BE(0)
  const total = 2 + body
  if (total > MAX_OPEN_HEADER_BYTES) {
    throw fail('HOPGATE_ERR_OPEN_HEADER_TOO_LARGE', `${total} bytes, at most 1024`)
  }
  if (body === 0) throw fail('HOPGATE_ERR_OPEN_HEADER_TRUNCATED', 'length 0')
  if (buf.length > AT_VERSION && buf[AT_VERSION] !== OPEN_HEADER_VERSION) {
    throw fail('HOPGATE_ERR_OPEN_HEADER_BAD_VERSION', `version ${buf[AT_VERSION]}`)
  }
  if (body < MIN_OPEN_HEADER_BODY) {
    throw fail('HOPGATE_ERR_OPEN_HEADER_TRUNCATED', `length ${body}, at least 31`)
  }
  if (buf.length < total) return { need: total - buf.length }
  return { header: parseBody(buf, total), consumed: total }
}

function parseBody(buf: Buffer, end: number): OpenHeader {
  if (buf[AT_FLAGS] !== 0) {
    throw fail('HOPGATE_ERR_OPEN_HEADER_BAD_FLAGS', `flags 0x${buf[AT_FLAGS]!.toString(16)}`)
  }
  const project = projectIdFromBytes(buf, AT_PROJECT)
  const service = SERVICE_BY_CODE[buf[AT_SERVICE]!]
  if (service === undefined) {
    throw fail('HOPGATE_ERR_OPEN_HEADER_UNKNOWN_SERVICE', `service ${buf[AT_SERVICE]}`)
  }
  const port = buf.readUInt16BE(AT_PORT)
  checkPort(service, port)
  const epoch = buf.readBigUInt64BE(AT_EPOCH)
  if (epoch < 1n || epoch > MAX_EPOCH) {
    throw fail('HOPGATE_ERR_OPEN_HEADER_BAD_EPOCH', `epoch ${epoch}`)
  }
  let at = AT_ADDRESS_LENGTH
  const clientAddress = readText(buf, at, end, MAX_CLIENT_ADDRESS_BYTES, 'ADDRESS')
  at += 1 + clientAddress.length
  if (!isClientAddress(clientAddress)) {
    throw fail('HOPGATE_ERR_OPEN_HEADER_BAD_ADDRESS', JSON.stringify(clientAddress))
  }
  const traceId = readText(buf, at, end, MAX_TRACE_ID_BYTES, 'TRACE_ID')
  at += 1 + traceId.length
  if (!isTraceId(traceId)) {
    throw fail('HOPGATE_ERR_OPEN_HEADER_BAD_TRACE_ID', JSON.stringify(traceId))
  }
  skipExtensions(buf, at, end)
  return { project, service, port, routeEpoch: Number(epoch), clientAddress, traceId }
}

/** A u8-length-prefixed string at `at`; latin1 so that every byte stays one char to judge. */
function readText(
  buf: Buffer,
  at: number,
  end: number,
  max: number,
  what: 'ADDRESS' | 'TRACE_ID',
): string {
  if (at >= end) throw fail('HOPGATE_ERR_OPEN_HEADER_TRUNCATED', `no ${what.toLowerCase()}`)
  const n = buf[at]!
  if (n === 0 || n > max) throw fail(`HOPGATE_ERR_OPEN_HEADER_BAD_${what}`, `${n} bytes`)
  if (at + 1 + n > end) {
    throw fail('HOPGATE_ERR_OPEN_HEADER_TRUNCATED', `${what.toLowerCase()} past the end`)
  }
  return buf.toString('latin1', at + 1, at + 1 + n)
}

/**
 * v1 defines no extensions. Each is `type u8, length u16, value`, in strictly ascending type
 * order; one with EXTENSION_MAY_IGNORE set is skipped, any other is refused, so a newer edge can
 * add hints that old agents may drop, and facts they must not drop.
 */
function skipExtensions(buf: Buffer, at: number, end: number): void {
  let last = -1
  while (at < end) {
    if (end - at < 3) {
      throw fail('HOPGATE_ERR_OPEN_HEADER_TRAILING_GARBAGE', `${end - at} byte(s) after the fields`)
    }
    const type = buf[at]!
    const length = buf.readUInt16BE(at + 1)
    at += 3
    if (length > end - at) {
      throw fail('HOPGATE_ERR_OPEN_HEADER_TRAILING_GARBAGE', `extension ${type} runs past the end`)
    }
    if (type <= last) {
      throw fail('HOPGATE_ERR_OPEN_HEADER_BAD_EXTENSION', `extension ${type} after ${last}`)
    }
    if ((type & EXTENSION_MAY_IGNORE) === 0) {
      throw fail('HOPGATE_ERR_OPEN_HEADER_BAD_EXTENSION', `extension ${type} must be understood`)
    }
    last = type
    at += length
  }
}

/**
 * Push decoder for the agent's side of a stream: feed it the stream's chunks until it returns
 * the header and whatever payload bytes followed it in the same chunk. It copies only header
 * bytes (at most 1 KiB) and only when a header arrives split; a failure is sticky.
 */
export class OpenHeaderReader {
  private stash: Buffer | undefined
  private held = 0
  private finished = false
  private failure: HopgateError | undefined

  /** Header bytes held while waiting for the rest; never more than MAX_OPEN_HEADER_BYTES. */
  get bufferedBytes(): number {
    return this.held
  }

  /** Returns the header once complete; throws HOPGATE_ERR_OPEN_HEADER_* on bad input. */
  push(chunk: Buffer): { header: OpenHeader; rest: Buffer } | undefined {
    if (this.failure) throw this.failure
    if (this.finished) throw new Error('OpenHeaderReader: the header was already read')
    try {
      return this.take(chunk)
    } catch (err) {
      this.stash = undefined
      this.held = 0
      if (err instanceof HopgateError) this.failure = err
      throw err
    }
  }

  private take(chunk: Buffer): { header: OpenHeader; rest: Buffer } | undefined {
    let offset = 0
    if (this.held === 0) {
      const r = tryDecodeOpenHeader(chunk)
      if ('header' in r) return this.finish(r.header, chunk.subarray(r.consumed))
    }
    for (;;) {
      const r = tryDecodeOpenHeader(this.stash?.subarray(0, this.held) ?? EMPTY)
      if ('header' in r) return this.finish(r.header, chunk.subarray(offset))
      if (offset === chunk.length) return undefined
      // `need` never reaches past the header's end, so payload bytes are never copied here.
      const n = Math.min(r.need, chunk.length - offset)
      this.stash ??= Buffer.allocUnsafe(MAX_OPEN_HEADER_BYTES)
      chunk.copy(this.stash, this.held, offset, offset + n)
      this.held += n
      offset += n
    }
  }

  private finish(header: OpenHeader, rest: Buffer): { header: OpenHeader; rest: Buffer } {
    this.finished = true
    this.stash = undefined
    this.held = 0
    return { header, rest }
  }
}
