// One side of the control stream: frames messages out (seq stamped), decodes messages in, and
// turns a protocol violation into a typed 'error' plus a reset of the stream. What each message
// means (leases, fencing, drain) is the edge's and the agent's business.
import { EventEmitter } from 'node:events'
import type { Duplex } from 'node:stream'
import type { HopgateError } from '../errors.js'
import { ControlDecoder, ControlEncoder, type Unsequenced } from './control.js'
import type { ControlMessage, MessageFrom, Side } from './control-schema.js'

export interface ControlChannelEvents {
  message: [msg: ControlMessage]
  error: [err: HopgateError]
  close: []
}

export class ControlChannel<S extends Side> extends EventEmitter<ControlChannelEvents> {
  private readonly encoder: ControlEncoder<S>
  private readonly decoder: ControlDecoder

  constructor(
    readonly stream: Duplex,
    readonly side: S,
  ) {
    super()
    this.encoder = new ControlEncoder(side)
    this.decoder = new ControlDecoder(side === 'agent' ? 'edge' : 'agent', {
      onMessage: (msg) => this.emit('message', msg),
      onError: (err) => {
        if (this.listenerCount('error') > 0) this.emit('error', err)
        stream.destroy()
      },
    })
    stream.on('data', (chunk: Buffer) => this.decoder.push(chunk))
    stream.on('end', () => this.decoder.end())
    stream.on('error', () => {})
    stream.once('close', () => this.emit('close'))
  }

  /** The seq the next sent message will carry (to match an answer's aboutSeq). */
  get nextSeq(): number {
    return this.encoder.nextSeq
  }

  send(msg: Unsequenced<MessageFrom<S>>): void {
    if (this.stream.destroyed || this.stream.writableEnded) return
    this.stream.write(this.encoder.encode(msg))
  }

  /** The next message, or a rejection if none comes within `timeoutMs` or the stream closes. */
  next(timeoutMs: number): Promise<ControlMessage> {
    return new Promise((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer)
        this.off('message', onMessage)
        this.off('close', onClose)
      }
      const onMessage = (msg: ControlMessage): void => (done(), resolve(msg))
      const onClose = (): void => (done(), reject(new Error('control stream closed')))
      const timer = setTimeout(
        () => (done(), reject(new Error('control stream timed out'))),
        timeoutMs,
      )
      this.on('message', onMessage)
      this.on('close', onClose)
    })
  }

  close(): void {
    this.stream.destroy()
  }
}
