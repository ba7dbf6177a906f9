// Links for the bench: TLS 1.3 mutual-auth options, dialing and listening on 127.0.0.1 only, and
// the client-side Dialer that hands out logical streams for every path: a stream on one mux
// session over one TLS link, or a fresh TLS/TCP link per stream.
import net from 'node:net'
import type { Duplex } from 'node:stream'
import tls from 'node:tls'
import type { TestPki } from '../../certs/testing.js'
import { isMux, loadMux, type PathName } from './muxes.js'

export type Pki = TestPki
export const HOST = '127.0.0.1'

/** Mutual TLS 1.3 on both ends: the tunnel we are benchmarking never runs without it. */
export function serverTlsOptions(pki: Pki): tls.TlsOptions {
  return {
    ca: pki.caCert,
    cert: pki.serverCert,
    key: pki.serverKey,
    minVersion: 'TLSv1.3',
    requestCert: true,
    rejectUnauthorized: true,
  }
}

function clientTlsOptions(pki: Pki, port: number): tls.ConnectionOptions {
  return {
    host: HOST,
    port,
    ca: pki.caCert,
    cert: pki.clientCert,
    key: pki.clientKey,
    minVersion: 'TLSv1.3',
    rejectUnauthorized: true,
  }
}

/** Resolves once the link can carry data (TCP connected / TLS handshake verified). */
export function dialLink(kind: 'tcp' | 'tls', port: number, pki: Pki): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const sock =
      kind === 'tls' ? tls.connect(clientTlsOptions(pki, port)) : net.connect({ host: HOST, port })
    const ready = kind === 'tls' ? 'secureConnect' : 'connect'
    const fail = (err: Error) => {
      sock.destroy()
      reject(err)
    }
    sock.once('error', fail)
    sock.once(ready, () => {
      sock.off('error', fail)
      sock.setNoDelay(true)
      resolve(sock)
    })
  })
}

/** Listen on an ephemeral loopback port; `onLink` gets each verified connection. */
export function listenLink(
  kind: 'tcp' | 'tls',
  pki: Pki,
  onLink: (sock: net.Socket) => void,
): Promise<{ server: net.Server; port: number }> {
  const accept = (sock: net.Socket) => {
    sock.setNoDelay(true)
    onLink(sock)
  }
  const server =
    kind === 'tls' ? tls.createServer(serverTlsOptions(pki), accept) : net.createServer(accept)
  // Failed handshakes (e.g. a client torn down mid-handshake on timeout) must not kill the child.
  server.on('tlsClientError', () => {})
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen({ host: HOST, port: 0, backlog: 1024 }, () => {
      const addr = server.address()
      if (addr === null || typeof addr === 'string') return reject(new Error('no port'))
      resolve({ server, port: addr.port })
    })
  })
}

export interface Dialer {
  open(): Promise<Duplex>
  /** Tears everything down without waiting on the peer, so a wedged path cannot hang the bench. */
  close(): void
}

export async function dial(path: PathName, port: number, pki: Pki): Promise<Dialer> {
  if (!isMux(path)) {
    const kind = path === 'tcp' ? 'tcp' : 'tls'
    const socks = new Set<net.Socket>()
    return {
      open: async () => {
        const s = await dialLink(kind, port, pki)
        socks.add(s)
        s.once('close', () => socks.delete(s))
        return s
      },
      close: () => {
        for (const s of socks) s.destroy()
      },
    }
  }
  const factory = await loadMux(path)
  const link = await dialLink('tls', port, pki)
  link.on('error', () => link.destroy())
  const peer = await factory(link, 'client')
  // Client-initiated streams only, but a mux may still surface inbound ones: drop them. Some
  // clients (yamux-js) cannot accept streams at all and throw here, which is fine.
  try {
    peer.onStream((s) => s.destroy())
  } catch {
    /* nothing to drop */
  }
  return {
    open: () => peer.openStream(),
    close: () => {
      peer.close().catch(() => {})
      link.destroy()
    },
  }
}
