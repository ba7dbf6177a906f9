// The dialing end of the peer link: at most one mutual-TLS yamux session from this edge to each
// other edge, dialed on first use and shared by every forwarded stream to it (concurrent first
// uses share one dial). The edge's client cert (edge CA) authenticates us; the peer's server cert
// must chain to the same edge CA with server-auth usage. A link that closes is dropped and
// redialed on next use. Which edge to use is forwarder.ts's decision.
import { X509Certificate } from 'node:crypto'
import { HopgateError } from '../../shared/errors.js'
import { Session, type YamuxConfig } from '../../shared/yamux/index.js'
import { assertTlsServerPeer } from '../../certs/identity.js'
import { dialMutualTls } from '../../certs/dial.js'
import { PEER_ALPN } from '../../certs/wire.js'
import type { Pki } from '../../certs/pki.js'

export interface PeerLinksOptions {
  pki: Pki
  yamux?: Partial<YamuxConfig>
  /** TCP and TLS handshake deadline, in ms. @default 2000 */
  connectTimeoutMs?: number
}

export class PeerLinks {
  private readonly links = new Map<string, Session>()
  private readonly dialing = new Map<string, Promise<Session>>()
  private readonly edgeCa: X509Certificate
  private closed = false

  constructor(private readonly opts: PeerLinksOptions) {
    this.edgeCa = new X509Certificate(opts.pki.edgeCa.certPem)
  }

  /** A live session to the edge at `address` (keyed by id and address: a moved edge redials). */
  get(edgeId: string, address: string): Promise<Session> {
    if (this.closed)
      return Promise.reject(new HopgateError('HOPGATE_ERR_PEER_UNAVAILABLE', 'closed'))
    const key = `${edgeId}@${address}`
    const live = this.links.get(key)
    if (live && !live.closed && live.remoteGoAway === undefined) return Promise.resolve(live)
    let p = this.dialing.get(key)
    if (!p) {
      p = this.dial(address).then(
        (session) => {
          this.dialing.delete(key)
          if (this.closed) {
            session.close()
            throw new HopgateError('HOPGATE_ERR_PEER_UNAVAILABLE', 'closed')
          }
          this.links.set(key, session)
          session.once('close', () => {
            if (this.links.get(key) === session) this.links.delete(key)
          })
          return session
        },
        (err: unknown) => {
          this.dialing.delete(key)
          throw err
        },
      )
      this.dialing.set(key, p)
    }
    return p
  }

  /** Live links, for metrics and tests. */
  get size(): number {
    return this.links.size
  }

  close(): void {
    this.closed = true
    for (const s of this.links.values()) s.close()
    this.links.clear()
  }

  private async dial(address: string): Promise<Session> {
    const socket = await dialMutualTls({
      address,
      keyPem: this.opts.pki.edgeClient.keyPem,
      certPem: this.opts.pki.edgeClient.chainPem,
      caPem: this.opts.pki.edgeCa.certPem,
      alpn: PEER_ALPN,
      timeoutMs: this.opts.connectTimeoutMs ?? 2000,
      // Trust is "issued by our edge CA for server auth", not a host name: edges dial each other
      // by registry address, which the server cert need not name.
      verify: (s) => assertTlsServerPeer(s, this.edgeCa, Date.now()),
    }).catch((err: unknown) => {
      throw new HopgateError('HOPGATE_ERR_PEER_UNAVAILABLE', `peer link to ${address}`, {
        cause: err,
      })
    })
    return new Session(socket, {
      role: 'client',
      ...(this.opts.yamux ? { config: this.opts.yamux } : {}),
    })
  }
}
