// Who a peer is: the runner or edge id read from exactly one URI SAN of a certificate that Node's
// crypto verified against the expected CA, within its validity, for client auth, not a CA. Never
// the CN; for a server we dialed, only that its server cert is from the expected CA. Owns no
// revocation state (revocation.ts), no TLS server (the edge's listener) and no dial (dial.ts).
import { X509Certificate } from 'node:crypto'
import type { TLSSocket } from 'node:tls'
import { HopgateError } from '../shared/errors.js'
import { isValidId } from './state.js'

export type IdentityKind = 'runner' | 'edge'

export const URI_PREFIX: Record<IdentityKind, string> = {
  runner: 'urn:hopgate:runner:',
  edge: 'urn:hopgate:edge:',
}

export const EKU_SERVER_AUTH = '1.3.6.1.5.5.7.3.1'
export const EKU_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2'

export interface SanEntry {
  type: string
  value: string
}

/**
 * Parses Node's `subjectAltName` string. Node JSON-quotes values holding separators, so a URI
 * like `urn:x, URI:urn:hopgate:runner:evil` stays one entry instead of smuggling in a second.
 */
export function parseSubjectAltName(san: string | undefined): SanEntry[] {
  const out: SanEntry[] = []
  if (!san) return out
  let i = 0
  while (i < san.length) {
    const colon = san.indexOf(':', i)
    if (colon < 0) throw new HopgateError('HOPGATE_ERR_PKI_BAD_IDENTITY', 'unreadable SAN')
    const type = san.slice(i, colon)
    let value: string
    let next: number
    if (san[colon + 1] === '"') {
      let j = colon + 2
      while (j < san.length && san[j] !== '"') j += san[j] === '\\' ? 2 : 1
      try {
        value = JSON.parse(san.slice(colon + 1, j + 1)) as string
      } catch {
        throw new HopgateError('HOPGATE_ERR_PKI_BAD_IDENTITY', 'unreadable SAN')
      }
      next = j + 1
    } else {
      const comma = san.indexOf(', ', colon + 1)
      next = comma < 0 ? san.length : comma
      value = san.slice(colon + 1, next)
    }
    out.push({ type, value })
    if (next < san.length && san.slice(next, next + 2) !== ', ') {
      throw new HopgateError('HOPGATE_ERR_PKI_BAD_IDENTITY', 'unreadable SAN')
    }
    i = next + 2
  }
  return out
}

/**
 * The hopgate id of `kind` named by `cert`, checking only its form: exactly one URI SAN of that
 * kind and none of any other hopgate kind. No trust decision; use runnerIdFromCert for that.
 */
export function hopgateIdOf(cert: X509Certificate, kind: IdentityKind): string {
  const uris = parseSubjectAltName(cert.subjectAltName)
    .filter((e) => e.type === 'URI')
    // URN schemes and namespaces compare case-insensitively: count look-alikes as claims too.
    .filter((e) => e.value.toLowerCase().startsWith('urn:hopgate:'))
  const prefix = URI_PREFIX[kind]
  if (uris.length !== 1) {
    throw new HopgateError('HOPGATE_ERR_PKI_BAD_IDENTITY', `${uris.length} hopgate URI SANs`)
  }
  const uri = uris[0]!.value
  const id = uri.startsWith(prefix) ? uri.slice(prefix.length) : undefined
  if (!isValidId(id)) {
    throw new HopgateError('HOPGATE_ERR_PKI_BAD_IDENTITY', `expected a ${kind} URI SAN`)
  }
  return id
}

function toMs(now: Date | number): number {
  return typeof now === 'number' ? now : now.getTime()
}

/** Throws unless `cert` was signed by `ca` (name match and signature, both Node's checks). */
export function assertIssuedBy(cert: X509Certificate, ca: X509Certificate): void {
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) {
    throw new HopgateError('HOPGATE_ERR_PKI_WRONG_ISSUER', `issuer is "${cert.issuer}"`)
  }
}

/** Throws unless `now` (epoch ms or Date) lies inside the certificate's validity. */
export function assertValidAt(cert: X509Certificate, now: Date | number): void {
  const from = Date.parse(cert.validFrom)
  const to = Date.parse(cert.validTo)
  const t = toMs(now)
  if (!(from <= t && t <= to)) {
    throw new HopgateError(
      'HOPGATE_ERR_PKI_CERT_EXPIRED',
      `valid ${cert.validFrom} - ${cert.validTo}`,
    )
  }
}

function extKeyUsage(cert: X509Certificate): string[] {
  // Node 20 reports the extended key usage OIDs as `keyUsage` (undefined when absent).
  const eku: unknown = cert.keyUsage
  return Array.isArray(eku) ? (eku as string[]) : []
}

/** Throws unless `cert` is an end-entity certificate carrying `oid` as extended key usage. */
export function assertLeafUsage(cert: X509Certificate, oid: string): void {
  if (cert.ca) throw new HopgateError('HOPGATE_ERR_PKI_WRONG_USAGE', 'certificate is a CA')
  if (!extKeyUsage(cert).includes(oid)) {
    throw new HopgateError('HOPGATE_ERR_PKI_WRONG_USAGE', `missing extended key usage ${oid}`)
  }
}

function idFromCert(
  kind: IdentityKind,
  peerCert: X509Certificate,
  ca: X509Certificate,
  now: Date | number,
): string {
  // Order matters for the reported reason: a foreign cert is "wrong issuer" before anything else.
  assertIssuedBy(peerCert, ca)
  assertValidAt(peerCert, now)
  assertLeafUsage(peerCert, EKU_CLIENT_AUTH)
  return hopgateIdOf(peerCert, kind)
}

/** The runner id of a client certificate issued by the runner CA, or a typed PKI error. */
export function runnerIdFromCert(
  peerCert: X509Certificate,
  runnerCa: X509Certificate,
  now: Date | number,
): string {
  return idFromCert('runner', peerCert, runnerCa, now)
}

/** The edge id of the edge's client certificate (direct dial), issued by the edge CA. */
export function edgeIdFromCert(
  peerCert: X509Certificate,
  edgeCa: X509Certificate,
  now: Date | number,
): string {
  return idFromCert('edge', peerCert, edgeCa, now)
}

export interface PeerIdentity {
  id: string
  /** Upper-case hex, as X509Certificate#serialNumber reports it. */
  serial: string
  cert: X509Certificate
}

export interface IdentifyOptions {
  kind: IdentityKind
  ca: X509Certificate
  now: Date | number
  /** Consulted after the certificate checks; revocation.ts's RevocationList fits. */
  revocation?: { isRevoked(id: string, serial?: string): boolean }
}

/**
 * Identifies the peer of an established TLS socket. Servers run with `rejectUnauthorized: false`
 * so a refusal can be reported with its reason; this function is then the whole gate, and also
 * requires OpenSSL's own verdict (`authorized`) as a second opinion.
 */
export function identifyTlsPeer(socket: TLSSocket, opts: IdentifyOptions): PeerIdentity {
  const cert = socket.getPeerX509Certificate()
  if (!cert) throw new HopgateError('HOPGATE_ERR_PKI_NO_PEER_CERT')
  const id = idFromCert(opts.kind, cert, opts.ca, opts.now)
  if (opts.revocation?.isRevoked(id, cert.serialNumber)) {
    throw new HopgateError('HOPGATE_ERR_PKI_REVOKED', `${opts.kind} ${id}`)
  }
  if (!socket.authorized) {
    throw new HopgateError('HOPGATE_ERR_PKI_TLS_UNVERIFIED', String(socket.authorizationError))
  }
  return { id, serial: cert.serialNumber, cert }
}

/**
 * Throws unless the server we dialed showed a server certificate from `ca`, within its validity,
 * and OpenSSL verified the chain (`authorized`). No id is read: a CA that signs only edges makes
 * any of its server certs acceptable (the agent's edge, an edge's peer edge).
 */
export function assertTlsServerPeer(
  socket: TLSSocket,
  ca: X509Certificate,
  now: Date | number,
): void {
  const leaf = socket.getPeerX509Certificate()
  if (!leaf || !socket.authorized) {
    throw new HopgateError('HOPGATE_ERR_PKI_TLS_UNVERIFIED', String(socket.authorizationError))
  }
  assertIssuedBy(leaf, ca)
  assertValidAt(leaf, now)
  assertLeafUsage(leaf, EKU_SERVER_AUTH)
}
