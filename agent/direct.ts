// The direct connector, agent side: an in-cluster agent listens (default :7444) for the edge's
// dial. Only edge client certs from the edge CA get in (URI SAN urn:hopgate:edge:<id>); the
// session that results is the same as a reverse one (the agent is the yamux client and opens the
// control stream), so nothing above the connector knows how it was made.
import tls from 'node:tls'
import { X509Certificate } from 'node:crypto'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { Session, type YamuxConfig } from '../shared/yamux/index.js'
import { isHopgateError } from '../shared/errors.js'
import { identifyTlsPeer } from '../certs/identity.js'
import { TUNNEL_ALPN } from '../certs/wire.js'
import type { RunnerIdentity } from '../certs/enroll.js'

export interface DirectListenerOptions {
  host: string
  port: number
  identity: RunnerIdentity
  yamux?: Partial<YamuxConfig>
  /** Runs the agent's control handshake on the new session. */
  handshake(session: Session, edgeId: string): Promise<void>
  onRefused?(code: string, err: unknown): void
}

export interface DirectListener {
  address: AddressInfo
  /** Serves a renewed key and cert to edges that dial from now on. */
  setIdentity(identity: RunnerIdentity): void
  close(): Promise<void>
}

export async function startDirectListener(opts: DirectListenerOptions): Promise<DirectListener> {
  const edgeCa = new X509Certificate(opts.identity.edgeCaPem)
  const sockets = new Set<tls.TLSSocket>()
  const server = tls.createServer({
    key: opts.identity.keyPem,
    cert: opts.identity.certPem,
    ca: opts.identity.edgeCaPem,
    requestCert: true,
    rejectUnauthorized: false,
    minVersion: 'TLSv1.3',
    ALPNProtocols: [TUNNEL_ALPN],
  })
  server.on('tlsClientError', (err) => opts.onRefused?.('HOPGATE_ERR_PKI_TLS_UNVERIFIED', err))
  server.on('secureConnection', (socket) => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    let edgeId: string
    try {
      if (socket.alpnProtocol !== TUNNEL_ALPN)
        throw new Error(`ALPN ${String(socket.alpnProtocol)}`)
      edgeId = identifyTlsPeer(socket, { kind: 'edge', ca: edgeCa, now: Date.now() }).id
    } catch (err) {
      opts.onRefused?.(isHopgateError(err) ? err.code : 'HOPGATE_ERR_JOIN_ALPN_MISMATCH', err)
      return void socket.destroy()
    }
    socket.setNoDelay(true)
    const session = new Session(socket, {
      role: 'client',
      ...(opts.yamux ? { config: opts.yamux } : {}),
    })
    opts.handshake(session, edgeId).catch((err: unknown) => {
      opts.onRefused?.(isHopgateError(err) ? err.code : 'HOPGATE_ERR_CONTROL_REFUSED', err)
      session.close()
    })
  })
  server.listen(opts.port, opts.host)
  await once(server, 'listening')
  return {
    address: server.address() as AddressInfo,
    setIdentity: (id) =>
      server.setSecureContext({
        key: id.keyPem,
        cert: id.certPem,
        ca: id.edgeCaPem,
        minVersion: 'TLSv1.3',
      }),
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
