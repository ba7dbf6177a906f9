// The join exchange's framing and messages: one u32 big-endian length-prefixed JSON message each
// way, at most 16 KiB, read with a deadline. Knows nothing about tokens, CSRs or TLS trust
// (enroll.ts decides what a message means).
import type { Duplex } from 'node:stream'
import { z } from 'zod'
import type { Clock } from '../shared/clock.js'
import { HopgateError } from '../shared/errors.js'

/** ALPN ids on the edge's tunnel port: enrollment, and the mTLS tunnel it precedes. */
export const JOIN_ALPN = 'hopgate-join/1'
export const TUNNEL_ALPN = 'hopgate-tunnel/1'
/** ALPN of the edge-to-edge peer link (edge/cluster/), on its own port: edge CA on both sides. */
export const PEER_ALPN = 'hopgate-peer/1'
export const JOIN_VERSION = 1
export const MAX_JOIN_MESSAGE_BYTES = 16 * 1024

const pem = z.string().min(1).max(MAX_JOIN_MESSAGE_BYTES)

export const JoinRequestSchema = z.object({
  type: z.literal('join'),
  version: z.number(),
  token: z.string().max(256),
  csr: pem,
})
export type JoinRequest = z.infer<typeof JoinRequestSchema>

export const JoinReplySchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('joined'),
    cert: pem,
    runnerCa: pem,
    edgeCa: pem,
    runnerId: z.string().max(63),
  }),
  z.object({
    type: z.literal('error'),
    code: z.string().max(64),
    message: z.string().max(1024),
  }),
])
export type JoinReply = z.infer<typeof JoinReplySchema>

export function encodeMessage(message: object): Buffer {
  const body = Buffer.from(JSON.stringify(message), 'utf8')
  if (body.length > MAX_JOIN_MESSAGE_BYTES) {
    throw new HopgateError('HOPGATE_ERR_JOIN_MESSAGE_TOO_LARGE', `${body.length} bytes`)
  }
  const head = Buffer.alloc(4)
  head.writeUInt32BE(body.length)
  return Buffer.concat([head, body])
}

export interface ReadOptions {
  clock: Clock
  timeoutMs: number
  maxBytes?: number
}

/**
 * Reads exactly one message. Refuses as soon as the length prefix exceeds the limit (nothing more
 * is buffered), on bytes after the message, on a close mid-message and at the deadline. The
 * caller owns the socket afterwards: listeners are removed, the socket is left paused.
 */
export function readOneMessage(socket: Duplex, opts: ReadOptions): Promise<unknown> {
  const max = opts.maxBytes ?? MAX_JOIN_MESSAGE_BYTES
  return new Promise<unknown>((resolve, reject) => {
    const chunks: Buffer[] = []
    let have = 0
    let need = -1
    const finish = (err: Error | undefined, value?: unknown): void => {
      opts.clock.clearTimeout(timer)
      socket.off('data', onData)
      socket.off('end', onEnd)
      socket.off('close', onEnd)
      socket.off('error', onError)
      socket.pause()
      if (err) reject(err)
      else resolve(value)
    }
    const timer = opts.clock.setTimeout(
      () =>
        finish(new HopgateError('HOPGATE_ERR_JOIN_TIMEOUT', `no message in ${opts.timeoutMs} ms`)),
      opts.timeoutMs,
    )
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk)
      have += chunk.length
      if (need < 0 && have >= 4) {
        need = Buffer.concat(chunks).readUInt32BE(0)
        if (need > max) {
          finish(new HopgateError('HOPGATE_ERR_JOIN_MESSAGE_TOO_LARGE', `${need} > ${max} bytes`))
          return
        }
        if (need === 0) {
          finish(new HopgateError('HOPGATE_ERR_JOIN_BAD_MESSAGE', 'empty message'))
          return
        }
      }
      if (need < 0 || have < 4 + need) return
      if (have > 4 + need) {
        finish(new HopgateError('HOPGATE_ERR_JOIN_BAD_MESSAGE', 'bytes after the message'))
        return
      }
      const body = Buffer.concat(chunks).subarray(4)
      let value: unknown
      try {
        value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body))
      } catch {
        finish(new HopgateError('HOPGATE_ERR_JOIN_BAD_MESSAGE', 'not UTF-8 JSON'))
        return
      }
      finish(undefined, value)
    }
    const onEnd = (): void => {
      finish(new HopgateError('HOPGATE_ERR_JOIN_CONNECTION_FAILED', 'closed before a message'))
    }
    const onError = (err: Error): void => {
      finish(new HopgateError('HOPGATE_ERR_JOIN_CONNECTION_FAILED', err.message, { cause: err }))
    }
    socket.on('data', onData)
    socket.on('end', onEnd)
    socket.on('close', onEnd)
    socket.on('error', onError)
    socket.resume()
  })
}
