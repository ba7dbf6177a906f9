// How the agent reaches an edge: mutual TLS 1.3 with its runner key and cert, trusting only the
// edge CA it received at enrollment, ALPN `hopgate-tunnel/1`. The edge's certificate must be an
// edge server cert from that CA; host names are not checked because that CA signs edges only.
import tls from 'node:tls'
import { X509Certificate } from 'node:crypto'
import { HopgateError } from '../shared/errors.js'
import { TUNNEL_ALPN } from '../certs/wire.js'
import {
  assertIssuedBy,
  assertLeafUsage,
  assertValidAt,
  EKU_SERVER_AUTH,
} from '../certs/identity.js'
import type { RunnerIdentity } from '../certs/enroll.js'

export function tunnelDialer(identity: RunnerIdentity, opts: { connectTimeoutMs?: number } = {}) {
  const edgeCa = new X509Certificate(identity.edgeCaPem)
  return (edge: string, signal: AbortSignal): Promise<tls.TLSSocket> =>
    new Promise((resolve, reject) => {
      const m = /^(.*):(\d+)$/.exec(edge)
      if (!m) return reject(new HopgateError('HOPGATE_ERR_CONFIG_INVALID', `edge address ${edge}`))
      const host = m[1]!.replace(/^\[|\]$/g, '')
      const socket = tls.connect({
        host,
        port: Number(m[2]),
        key: identity.keyPem,
        cert: identity.certPem,
        ca: identity.edgeCaPem,
        minVersion: 'TLSv1.3',
        ALPNProtocols: [TUNNEL_ALPN],
        // The edge CA is pinned and signs only edges: what matters is the chain and the usage.
        checkServerIdentity: () => undefined,
      })
      const fail = (err: Error): void => {
        clearTimeout(timer)
        signal.removeEventListener('abort', onAbort)
        socket.destroy()
        reject(err)
      }
      const onAbort = (): void => fail(new HopgateError('HOPGATE_ERR_ABORTED'))
      const timer = setTimeout(
        () => fail(new Error(`connect to ${edge} timed out`)),
        opts.connectTimeoutMs ?? 10_000,
      )
      signal.addEventListener('abort', onAbort, { once: true })
      socket.once('error', fail)
      socket.once('secureConnect', () => {
        try {
          if (socket.alpnProtocol !== TUNNEL_ALPN)
            throw new HopgateError('HOPGATE_ERR_JOIN_ALPN_MISMATCH')
          const leaf = socket.getPeerX509Certificate()
          if (!leaf || !socket.authorized)
            throw new HopgateError(
              'HOPGATE_ERR_PKI_TLS_UNVERIFIED',
              String(socket.authorizationError),
            )
          assertIssuedBy(leaf, edgeCa)
          assertValidAt(leaf, Date.now())
          assertLeafUsage(leaf, EKU_SERVER_AUTH)
        } catch (err) {
          return fail(err as Error)
        }
        clearTimeout(timer)
        signal.removeEventListener('abort', onAbort)
        socket.off('error', fail)
        socket.setNoDelay(true)
        resolve(socket)
      })
    })
}
