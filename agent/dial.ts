// How the agent reaches an edge: mutual TLS 1.3 with its runner key and cert, trusting only the
// edge CA it received at enrollment, ALPN `hopgate-tunnel/1`. The edge's certificate must be an
// edge server cert from that CA; host names are not checked because that CA signs edges only.
import type tls from 'node:tls'
import { X509Certificate } from 'node:crypto'
import { TUNNEL_ALPN } from '../certs/wire.js'
import { assertTlsServerPeer } from '../certs/identity.js'
import { dialMutualTls } from '../certs/dial.js'
import type { RunnerIdentity } from '../certs/enroll.js'

export function tunnelDialer(identity: RunnerIdentity, opts: { connectTimeoutMs?: number } = {}) {
  const edgeCa = new X509Certificate(identity.edgeCaPem)
  return (edge: string, signal: AbortSignal): Promise<tls.TLSSocket> =>
    dialMutualTls({
      address: edge,
      keyPem: identity.keyPem,
      certPem: identity.certPem,
      caPem: identity.edgeCaPem,
      alpn: TUNNEL_ALPN,
      timeoutMs: opts.connectTimeoutMs ?? 10_000,
      signal,
      // The edge CA is pinned and signs only edges: what matters is the chain and the usage.
      verify: (socket) => assertTlsServerPeer(socket, edgeCa, Date.now()),
    })
}
