// Framing for the control stream: u32 big-endian length + UTF-8 JSON, at most 64 KiB per message
// (docs/PROTOCOL.md "Control stream"). A pure codec: `encodeControl`, a sequencing
// `ControlEncoder`, and a push `ControlDecoder` that also enforces per-direction seq and the
// hello/welcome handshake order. Message shapes are in control-schema.ts; sessions act on them.
import { HopgateError, type ErrorCode } from '../errors.js'
import {
  SCHEMA_BY_TYPE,
  sentBy,
  type ControlMessage,
  type MessageFrom,
  type Side,
} from './control-schema.js'

/** Largest JSON body of one control message, in bytes. */
export const MAX_CONTROL_MESSAGE_BYTES = 64 * 1024
export const CONTROL_LENGTH_BYTES = 4

const fail = (code: ErrorCode, detail: string): HopgateError => new HopgateError(code, detail)

/** A message as a caller writes it; ControlEncoder adds the seq. */
export type Unsequenced<M> = M extends unknown ? Omit<M, 'seq'> : never

/** Validates a value against the schema of its `type`; throws CONTROL_UNKNOWN_TYPE/BAD_MESSAGE. */
export function parseControl(value: unknown): ControlMessage {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw fail('HOPGATE_ERR_CONTROL_BAD_MESSAGE', 'not a JSON object')
  }
  const type: unknown = (value as { type?: unknown }).type
  const schema = typeof type === 'string' ? SCHEMA_BY_TYPE.get(type) : undefined
  if (!schema) throw fail('HOPGATE_ERR_CONTROL_UNKNOWN_TYPE', describe(type))
  const r = schema.safeParse(value)
  if (!r.success) {
    // Paths and zod's wording only: never echo the peer's values into logs.
    const detail = r.error.issues
      .slice(0, 3)
      .map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)
      .join('; ')
    throw fail('HOPGATE_ERR_CONTROL_BAD_MESSAGE', `${String(type)}: ${detail.slice(0, 300)}`)
  }
  return r.data
}

function describe(type: unknown): string {
  if (typeof type !== 'string') return `type is ${type === null ? 'null' : typeof type}`
  return `type ${JSON.stringify(type.slice(0, 40))}`
}

/** Validates `msg` and frames it; throws HOPGATE_ERR_CONTROL_* when it is not sendable. */
export function encodeControl(msg: ControlMessage): Buffer {
  // Encoding the parsed value drops fields the schema does not know.
  const json = JSON.stringify(parseControl(msg))
  const length = Buffer.byteLength(json)
  if (length > MAX_CONTROL_MESSAGE_BYTES) {
    throw fail('HOPGATE_ERR_CONTROL_TOO_LARGE', `${msg.type}: ${length} bytes, at most 65536`)
  }
  const out = Buffer.allocUnsafe(CONTROL_LENGTH_BYTES + length)
  out.writeUInt32BE(length, 0)
  out.write(json, CONTROL_LENGTH_BYTES, 'utf8')
  return out
}

/** Stamps one direction's messages with seq 1, 2, 3... and refuses types this side never sends. */
export class ControlEncoder<S extends Side> {
  private seq = 0

  constructor(readonly from: S) {}

  /** The seq the next message will carry. */
  get nextSeq(): number {
    return this.seq + 1
  }

  encode(msg: Unsequenced<MessageFrom<S>>): Buffer {
    if (!sentBy(this.from, msg.type)) {
      throw fail('HOPGATE_ERR_CONTROL_UNKNOWN_TYPE', `${msg.type} is not sent by the ${this.from}`)
    }
    const bytes = encodeControl({ ...msg, seq: this.seq + 1 })
    this.seq++
    return bytes
  }
}

export interface ControlSink {
  onMessage(msg: ControlMessage): void
  /** The input broke the protocol; the decoder ignores all further input. */
  onError(error: HopgateError): void
}

// fatal: invalid UTF-8 is an error, not U+FFFD that would then pass as JSON text.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/**
 * Decodes what one side (`from`) sends. Holds at most one message (4 + 64 KiB): a length over
 * the limit is refused on its four bytes, before any body is buffered.
 */
export class ControlDecoder {
  private readonly head = Buffer.alloc(CONTROL_LENGTH_BYTES)
  private headHeld = 0
  private body: Buffer | undefined
  private bodyHeld = 0
  private expectedSeq = 1
  private stopped = false

  constructor(
    readonly from: Side,
    private readonly sink: ControlSink,
  ) {}

  get bufferedBytes(): number {
    return this.headHeld + this.bodyHeld
  }

  get isStopped(): boolean {
    return this.stopped
  }

  stop(): void {
    this.stopped = true
    this.body = undefined
  }

  push(chunk: Buffer): void {
    let offset = 0
    while (offset < chunk.length && !this.stopped) {
      if (this.body === undefined) {
        const n = Math.min(CONTROL_LENGTH_BYTES - this.headHeld, chunk.length - offset)
        chunk.copy(this.head, this.headHeld, offset, offset + n)
        this.headHeld += n
        offset += n
        if (this.headHeld < CONTROL_LENGTH_BYTES) return
        const length = this.head.readUInt32BE(0)
        if (length > MAX_CONTROL_MESSAGE_BYTES) {
          return this.fail(fail('HOPGATE_ERR_CONTROL_TOO_LARGE', `${length} bytes, at most 65536`))
        }
        // A body that is all in this chunk is decoded in place, without a copy.
        if (chunk.length - offset >= length) {
          this.headHeld = 0
          this.deliver(chunk.subarray(offset, offset + length))
          offset += length
          continue
        }
        this.body = Buffer.allocUnsafe(length)
      }
      const body = this.body
      const n = Math.min(body.length - this.bodyHeld, chunk.length - offset)
      chunk.copy(body, this.bodyHeld, offset, offset + n)
      this.bodyHeld += n
      offset += n
      if (this.bodyHeld === body.length) {
        this.body = undefined
        this.bodyHeld = 0
        this.headHeld = 0
        this.deliver(body)
      }
    }
  }

  /** The stream ended: a message cut short is an error. */
  end(): void {
    if (this.stopped || this.bufferedBytes === 0) return
    this.fail(fail('HOPGATE_ERR_CONTROL_TRUNCATED', `${this.bufferedBytes} bytes of a message`))
  }

  private deliver(body: Buffer): void {
    let msg: ControlMessage
    try {
      msg = this.decode(body)
    } catch (err) {
      if (err instanceof HopgateError) return this.fail(err)
      throw err
    }
    this.expectedSeq++
    this.sink.onMessage(msg)
  }

  private decode(body: Buffer): ControlMessage {
    let value: unknown
    try {
      value = JSON.parse(utf8.decode(body))
    } catch (err) {
      throw new HopgateError('HOPGATE_ERR_CONTROL_BAD_JSON', `${body.length} bytes`, {
        cause: err,
      })
    }
    const msg = parseControl(value)
    if (!sentBy(this.from, msg.type)) {
      throw fail('HOPGATE_ERR_CONTROL_UNKNOWN_TYPE', `${msg.type} is not sent by the ${this.from}`)
    }
    if (msg.seq !== this.expectedSeq) {
      throw fail('HOPGATE_ERR_CONTROL_OUT_OF_ORDER', `seq ${msg.seq}, expected ${this.expectedSeq}`)
    }
    const first = this.expectedSeq === 1
    const opener = this.from === 'agent' ? 'hello' : 'welcome'
    // The agent speaks first with hello; the edge answers welcome, or error and closes.
    const allowedFirst = msg.type === opener || (this.from === 'edge' && msg.type === 'error')
    if (first ? !allowedFirst : msg.type === opener) {
      throw fail(
        'HOPGATE_ERR_CONTROL_OUT_OF_ORDER',
        first ? `${msg.type} before ${opener}` : `second ${opener}`,
      )
    }
    return msg
  }

  private fail(error: HopgateError): void {
    this.stop()
    this.sink.onError(error)
  }
}
