// Raw SSH messages an ssh2 Server has no call for, for the hostile sshd in tests: a channel
// request of any type, built with ssh2's own packet writer so it is encrypted and sequenced
// like everything else on the connection.
import { createRequire } from 'node:module'

export interface Ssh2Proto {
  channelOpenConfirm(remote: number, local: number, window: number, packet: number): void
  forwardedTcpip(chan: number, window: number, packet: number, cfg: object): void
  openssh_authAgent(chan: number, window: number, packet: number): void
  exitStatus(chan: number, status: number): void
  ping(): void
  _packetRW: {
    write: { allocStart: number; alloc(n: number): Buffer; finalize(b: Buffer): Buffer }
  }
}

const { sendPacket } = createRequire(import.meta.url)('ssh2/lib/protocol/utils.js') as {
  sendPacket: (proto: Ssh2Proto, packet: Buffer) => void
}
const CHANNEL_REQUEST = 98

/** The protocol object behind an ssh2 server Connection. */
export const protoOf = (conn: object): Ssh2Proto => (conn as { _protocol: Ssh2Proto })._protocol

/** The peer's id for a channel (what requests on it are addressed to). */
export const peerChannelId = (ch: object): number =>
  (ch as { outgoing: { id: number } }).outgoing.id

/** SSH_MSG_CHANNEL_REQUEST with no type-specific data. */
export function channelRequest(
  proto: Ssh2Proto,
  chan: number,
  type: string,
  wantReply: boolean,
): void {
  const w = proto._packetRW.write
  let p = w.allocStart
  const packet = w.alloc(1 + 4 + 4 + type.length + 1)
  packet[p] = CHANNEL_REQUEST
  packet.writeUInt32BE(chan, ++p)
  packet.writeUInt32BE(type.length, (p += 4))
  packet.write(type, (p += 4), 'latin1')
  packet[p + type.length] = wantReply ? 1 : 0
  sendPacket(proto, w.finalize(packet))
}
