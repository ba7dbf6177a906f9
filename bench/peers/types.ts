// A uniform "peer" shape over third-party yamux implementations, so benchmarks and compat tests
// can drive @chainsafe/libp2p-yamux and yamux-js the same way they drive our own Session.
import type { Duplex } from 'node:stream'

/** Which end of the transport a peer is: the client (dialer) opens odd stream ids, the server even. */
export type PeerRole = 'client' | 'server'

export interface MuxPeer {
  /** Library name, for reports ("libp2p-yamux", "yamux-js"). */
  readonly name: string
  /**
   * Open a stream to the remote. The Duplex bridges the library's stream: `end()` sends FIN,
   * `destroy()` resets (where the library can), readable ends on the remote FIN (where it can).
   */
  openStream(): Promise<Duplex>
  /** Register a callback for streams the remote opens. */
  onStream(cb: (s: Duplex) => void): void
  /** Round-trip a yamux Ping; resolves with the RTT in ms. Absent if the library cannot. */
  ping?(): Promise<number>
  /** Send a GoAway (normal termination) without closing: no new streams. Absent if unsupported. */
  goAway?(): void
  /** Close the session (GoAway where supported) and the transport. Idempotent. */
  close(): Promise<void>
}
