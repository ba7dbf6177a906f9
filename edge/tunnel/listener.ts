// The edge's tunnel port (7443): mutual TLS 1.3 with two protocols chosen by ALPN. `hopgate-join/1`
// is enrollment (no client cert yet: a join token and a CSR). `hopgate-tunnel/1` needs a runner
// cert from the runner CA; the runner id comes from its URI SAN (never from anything the agent
// says), revoked runners are refused, and the session goes through the control handshake. A
// refusal is logged with its typed reason and counted; it never disturbs another connection.
import tls from 'node:tls'
import { X509Certificate } from 'node:crypto'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { Session, type YamuxConfig } from '../../shared/yamux/index.js'
import { isHopgateError } from '../../shared/errors.js'
import { identifyTlsPeer } from '../../certs/identity.js'
import { serveJoin } from '../../certs/enroll.js'
import { JOIN_ALPN, TUNNEL_ALPN } from '../../certs/wire.js'
import type { Pki } from '../../certs/pki.js'
import type { TokenStore } from '../../certs/tokens.js'
import type { Revocations } from '../../certs/revocation.js'
import { edgeHandshake, type EdgeControlOptions } from './control.js'

export interface TunnelListenerOptions {
  host: string
  port: number
  pki: Pki
  tokens: TokenStore
  revocation: Revocations
  control: EdgeControlOptions
  yamux?: Partial<YamuxConfig>
  /** A connection was refused or failed: reason code and what is known of the peer. */
  onRefused?(code: string, detail: { remote: string; runnerId?: string; err: unknown }): void
  onSession?(runnerId: string, session: Session): void
}

export interface TunnelListener {
  server: tls.Server
  address: AddressInfo
  close(): Promise<void>
}

export async function startTunnelListener(opts: TunnelListenerOptions): Promise<TunnelListener> {
  const runnerCa = new X509Certificate(opts.pki.runnerCa.certPem)
  const server = tls.createServer({
    key: opts.pki.edgeServer.keyPem,
    cert: opts.pki.edgeServer.chainPem,
    ca: opts.pki.runnerCa.certPem,
    requestCert: true,
    // Judged by identifyTlsPeer instead, so each refusal is reported with its reason, and so an
    // agent without a cert can still enroll over the join protocol.
    rejectUnauthorized: false,
    minVersion: 'TLSv1.3',
    ALPNProtocols: [TUNNEL_ALPN, JOIN_ALPN],
  })
  const sockets = new Set<tls.TLSSocket>()
  const refuse = (code: string, socket: tls.TLSSocket, err: unknown, runnerId?: string): void => {
    const detail = {
      remote: `${socket.remoteAddress}:${socket.remotePort}`,
      err,
      ...(runnerId ? { runnerId } : {}),
    }
    opts.onRefused?.(code, detail)
    socket.destroy()
  }
  server.on('tlsClientError', (err, socket) => {
    opts.onRefused?.('HOPGATE_ERR_PKI_TLS_UNVERIFIED', { remote: `${socket.remoteAddress}`, err })
  })
  server.on('secureConnection', (socket) => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    socket.setNoDelay(true)
    if (socket.alpnProtocol === JOIN_ALPN) {
      void serveJoin(socket, {
        pki: opts.pki,
        tokens: opts.tokens,
        revocation: opts.revocation,
      }).then((outcome) => {
        if (!outcome.ok)
          opts.onRefused?.(outcome.code, { remote: `${socket.remoteAddress}`, err: undefined })
      })
      return
    }
    if (socket.alpnProtocol !== TUNNEL_ALPN) {
      return refuse(
        'HOPGATE_ERR_JOIN_ALPN_MISMATCH',
        socket,
        new Error(`ALPN ${String(socket.alpnProtocol)}`),
      )
    }
    let runnerId: string
    try {
      runnerId = identifyTlsPeer(socket, {
        kind: 'runner',
        ca: runnerCa,
        now: Date.now(),
        revocation: opts.revocation,
      }).id
    } catch (err) {
      return refuse(isHopgateError(err) ? err.code : 'HOPGATE_ERR_PKI_BAD_IDENTITY', socket, err)
    }
    const session = new Session(socket, {
      role: 'server',
      ...(opts.yamux ? { config: opts.yamux } : {}),
    })
    edgeHandshake(session, { runnerId, connector: 'reverse' }, opts.control).then(
      () => opts.onSession?.(runnerId, session),
      (err: unknown) => {
        session.close()
        refuse(
          isHopgateError(err) ? err.code : 'HOPGATE_ERR_CONTROL_REFUSED',
          socket,
          err,
          runnerId,
        )
      },
    )
  })
  server.listen(opts.port, opts.host)
  await once(server, 'listening')
  return {
    server,
    address: server.address() as AddressInfo,
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
