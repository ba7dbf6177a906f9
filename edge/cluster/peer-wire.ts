// The bytes of the edge-to-edge peer link (docs/PROTOCOL.md "Peer link"): the preamble an ingress
// edge writes first on each forwarded stream (version, hop count, runner id), and the peer status
// bytes (0x80 and up) the receiving edge answers when it will not relay. Bytes below 0x80 on a
// peer stream are the agent's own open status, relayed unchanged. No sockets here.
import { HopgateError } from '../../shared/errors.js'
import { isRunnerId } from '../routing/types.js'

export const PEER_VERSION = 1
/** Forwarding happens at most once: an edge never forwards a stream it received from a peer. */
export const MAX_HOPS = 1
/** version, hops, runner id length, runner id (at most 63 bytes). */
export const MAX_PREAMBLE_BYTES = 3 + 63

export const PeerStatus = {
  /** The receiving edge holds no live session to the runner (try another edge). */
  NoSession: 0x80,
  /** The preamble asks for more hops than allowed. */
  HopLimit: 0x81,
  /** The preamble did not decode. */
  BadPreamble: 0x82,
} as const
export type PeerStatus = (typeof PeerStatus)[keyof typeof PeerStatus]

export interface Preamble {
  runnerId: string
  hops: number
}

export function encodePreamble(p: Preamble): Buffer {
  if (!isRunnerId(p.runnerId)) throw new HopgateError('HOPGATE_ERR_RUNNER_INVALID', p.runnerId)
  const id = Buffer.from(p.runnerId, 'ascii')
  return Buffer.concat([Buffer.from([PEER_VERSION, p.hops, id.length]), id])
}

/**
 * Decodes a preamble from the start of `buf`. Returns undefined while more bytes are needed;
 * throws HOPGATE_ERR_PEER_BAD_PREAMBLE on a bad version or runner id.
 */
export function decodePreamble(buf: Buffer): { preamble: Preamble; rest: Buffer } | undefined {
  if (buf.length < 3) return undefined
  if (buf[0] !== PEER_VERSION) {
    throw new HopgateError('HOPGATE_ERR_PEER_BAD_PREAMBLE', `version ${buf[0]}`)
  }
  const len = buf[2]!
  if (len < 1 || len > 63)
    throw new HopgateError('HOPGATE_ERR_PEER_BAD_PREAMBLE', `id length ${len}`)
  if (buf.length < 3 + len) return undefined
  const runnerId = buf.subarray(3, 3 + len).toString('latin1')
  if (!isRunnerId(runnerId)) throw new HopgateError('HOPGATE_ERR_PEER_BAD_PREAMBLE', 'runner id')
  return { preamble: { runnerId, hops: buf[1]! }, rest: buf.subarray(3 + len) }
}

export function isPeerStatus(byte: number): byte is PeerStatus {
  return byte >= 0x80
}
