// Dialing a mutual-TLS peer, the one way the edge and the agent do it: TLS 1.3 only, one ALPN id
// offered, our key and cert chain, one pinned CA, host names not checked (trust is the chain plus
// the caller's `verify`), a connect deadline and an optional AbortSignal. Which peer is acceptable,
// which typed error a failed dial becomes and what runs on the socket stay with the caller.
import tls from 'node:tls'
import { HopgateError } from '../shared/errors.js'

export interface MutualTlsDialOptions {
  /** `host:port`, an IPv6 host in brackets. */
  address: string
  keyPem: string
  /** Our leaf certificate, with any intermediates after it. */
  certPem: string
  /** The only CA the peer's chain may end in. */
  caPem: string
  alpn: string
  /** TCP and TLS handshake deadline, in ms. */
  timeoutMs: number
  signal?: AbortSignal
  /** Runs after the handshake, before the socket is handed over; what it throws refuses the peer. */
  verify?: (socket: tls.TLSSocket) => void
}

/**
 * Resolves with the handshaken, verified socket (Nagle off). Rejects with the bare cause, for the
 * caller to wrap in its own typed error: HOPGATE_ERR_CONFIG_INVALID for an address without a
 * port, HOPGATE_ERR_ABORTED, a timeout Error, the socket's error, HOPGATE_ERR_JOIN_ALPN_MISMATCH
 * when the peer did not select `alpn`, or what `verify` threw.
 */
export function dialMutualTls(o: MutualTlsDialOptions): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const m = /^(.*):(\d+)$/.exec(o.address)
    if (!m) return reject(new HopgateError('HOPGATE_ERR_CONFIG_INVALID', `address ${o.address}`))
    if (o.signal?.aborted) return reject(new HopgateError('HOPGATE_ERR_ABORTED'))
    const socket = tls.connect({
      host: m[1]!.replace(/^\[|\]$/g, ''),
      port: Number(m[2]),
      key: o.keyPem,
      cert: o.certPem,
      ca: o.caPem,
      minVersion: 'TLSv1.3',
      ALPNProtocols: [o.alpn],
      // Who the peer is comes from its chain and `verify`, not a host name: peers are dialed by
      // registered address, which their certificates need not name.
      checkServerIdentity: () => undefined,
    })
    const done = (): void => {
      clearTimeout(timer)
      o.signal?.removeEventListener('abort', onAbort)
      socket.off('error', fail)
    }
    const fail = (err: Error): void => {
      done()
      socket.destroy()
      reject(err)
    }
    const onAbort = (): void => fail(new HopgateError('HOPGATE_ERR_ABORTED'))
    const timer = setTimeout(
      () => fail(new Error(`connect to ${o.address} timed out`)),
      o.timeoutMs,
    )
    o.signal?.addEventListener('abort', onAbort, { once: true })
    // An error after we are done (refused, or handed over before the caller's session listens)
    // must not crash the process; whoever holds the socket sees the 'close' that follows.
    socket.on('error', () => {})
    socket.once('error', fail)
    socket.once('secureConnect', () => {
      try {
        // A server that speaks TLS with a chain from our CA but not our protocol is not our peer.
        if (socket.alpnProtocol !== o.alpn) {
          throw new HopgateError(
            'HOPGATE_ERR_JOIN_ALPN_MISMATCH',
            `${o.address} selected ${String(socket.alpnProtocol)}, not ${o.alpn}`,
          )
        }
        o.verify?.(socket)
      } catch (err) {
        return fail(err instanceof Error ? err : new Error(String(err)))
      }
      done()
      socket.setNoDelay(true)
      resolve(socket)
    })
  })
}
