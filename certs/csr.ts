// Runner certificate requests: the agent makes its key (Node crypto) and a CSR (node-forge), and
// the edge checks the CSR with Node's crypto and issues the runner's client certificate. The CSR
// claims nothing that counts: the runner id comes from the join token, never from the request.
import { X509Certificate, createPublicKey, verify as cryptoVerify } from 'node:crypto'
import forge from 'node-forge'
import type { Clock } from '../shared/clock.js'
import { HopgateError } from '../shared/errors.js'
import { URI_PREFIX } from './identity.js'
import { assertId, wallClock, wallNow } from './state.js'
import { generateKeyPair, issueCertificate } from './x509.js'

export const RUNNER_CERT_LIFETIME_MS = 24 * 3600 * 1000
/** Covers clock skew between edge and runner without stretching the lifetime much. */
const BACKDATE_MS = 5 * 60_000
const MIN_RSA_BITS = 2048
/** Bigger keys buy nothing and cost the edge seconds per handshake: a cheap DoS lever. */
const MAX_RSA_BITS = 8192
/** Signature algorithms accepted on a CSR (forge can only produce and parse RSA PKCS#1 v1.5). */
const CSR_SIG_HASH: Record<string, string> = {
  '1.2.840.113549.1.1.11': 'sha256',
  '1.2.840.113549.1.1.12': 'sha384',
  '1.2.840.113549.1.1.13': 'sha512',
}

export interface RunnerKeyAndCsr {
  /** PKCS#8 PEM; stays on the runner. */
  keyPem: string
  csrPem: string
}

/** CN of a renewal CSR: the runner it is for (a join CSR names none; the token does). */
export function renewalCommonName(runnerId: string): string {
  return `hopgate runner ${runnerId}`
}

/**
 * RSA 2048: node-forge can put only RSA keys in a CSR and sign certificates over them. A renewal
 * passes `runnerId`, so the edge can refuse a request made for another runner.
 */
export function createRunnerKeyAndCsr(runnerId?: string): RunnerKeyAndCsr {
  const key = generateKeyPair(2048)
  const csr = forge.pki.createCertificationRequest()
  csr.publicKey = forge.pki.publicKeyFromPem(key.publicKeyPem)
  const cn = runnerId === undefined ? 'hopgate runner' : renewalCommonName(runnerId)
  csr.setSubject([{ name: 'commonName', value: cn }])
  csr.sign(forge.pki.privateKeyFromPem(key.privateKeyPem), forge.md.sha256.create())
  return { keyPem: key.privateKeyPem, csrPem: forge.pki.certificationRequestToPem(csr) }
}

function bad(detail: string, cause?: unknown): HopgateError {
  return new HopgateError('HOPGATE_ERR_JOIN_CSR_INVALID', detail, { cause })
}

/**
 * Checks a CSR and returns its public key (SPKI PEM). forge parses it and its verify() is a
 * sanity check only; the decision is Node's: the signature over the request info, the key type
 * and its size.
 */
export function checkRunnerCsr(csrPem: unknown): { publicKeyPem: string; commonName?: string } {
  if (typeof csrPem !== 'string' || !csrPem.includes('-----BEGIN CERTIFICATE REQUEST-----')) {
    throw bad('not a PEM certificate request')
  }
  let csr: forge.pki.CertificateSigningRequest
  try {
    csr = forge.pki.certificationRequestFromPem(csrPem)
  } catch (err) {
    // forge throws on anything it cannot read, including non-RSA keys.
    throw bad('unreadable (only RSA keys are accepted)', err)
  }
  const hash = CSR_SIG_HASH[String(csr.signatureOid)]
  if (!hash) throw bad('signature algorithm is not RSA with SHA-256/384/512')
  if (!csr.publicKey || !csr.certificationRequestInfo || typeof csr.signature !== 'string') {
    throw bad('incomplete request')
  }
  let sane: boolean
  try {
    sane = csr.verify()
  } catch {
    sane = false
  }
  if (!sane) throw bad('self-signature does not verify')
  const publicKeyPem = forge.pki.publicKeyToPem(csr.publicKey)
  let key
  try {
    key = createPublicKey(publicKeyPem)
  } catch (err) {
    throw bad('public key is unreadable', err)
  }
  const details = key.asymmetricKeyDetails
  const bits = details?.modulusLength ?? 0
  const e = details?.publicExponent ?? 0n
  if (key.asymmetricKeyType !== 'rsa' || bits < MIN_RSA_BITS || bits > MAX_RSA_BITS) {
    throw bad(`key must be RSA ${MIN_RSA_BITS}-${MAX_RSA_BITS} bits`)
  }
  if (e < 65537n || e % 2n === 0n || e >= 2n ** 32n) throw bad('unusual RSA public exponent')
  const tbs = Buffer.from(forge.asn1.toDer(csr.certificationRequestInfo).getBytes(), 'binary')
  const signature = Buffer.from(csr.signature, 'binary')
  if (!cryptoVerify(hash, tbs, key, signature)) throw bad('self-signature does not verify')
  const cn: unknown = csr.subject.getField('CN')?.value
  return { publicKeyPem, ...(typeof cn === 'string' ? { commonName: cn } : {}) }
}

export interface SignRunnerCsrOptions {
  csrPem: string
  /** From the consumed join token (or the renewing session's verified cert), never the CSR. */
  runnerId: string
  runnerCa: { certPem: string; keyPem: string }
  /** Wall clock (epoch ms). @default wallClock */
  clock?: Clock
  lifetimeMs?: number
}

/**
 * Issues the runner's certificate: runner CA, URI SAN urn:hopgate:runner:<id>, EKU clientAuth
 * (it dials edges) and serverAuth (an in-cluster agent also listens for the edge's direct dial),
 * random serial, `lifetimeMs` from now (never past the CA's own expiry).
 */
export function signRunnerCsr(opts: SignRunnerCsrOptions): string {
  assertId(opts.runnerId)
  const lifetimeMs = opts.lifetimeMs ?? RUNNER_CERT_LIFETIME_MS
  if (!(lifetimeMs > 0)) throw new RangeError('lifetimeMs must be positive')
  const { publicKeyPem } = checkRunnerCsr(opts.csrPem)
  const now = wallNow(opts.clock ?? wallClock)
  const caExpiry = Date.parse(new X509Certificate(opts.runnerCa.certPem).validTo)
  const notBefore = now - BACKDATE_MS
  const notAfter = Math.min(now + lifetimeMs, caExpiry)
  if (!(notAfter > notBefore)) {
    throw new HopgateError('HOPGATE_ERR_PKI_CERT_EXPIRED', 'the runner CA has expired')
  }
  return issueCertificate({
    commonName: `hopgate runner ${opts.runnerId}`,
    publicKeyPem,
    issuerKeyPem: opts.runnerCa.keyPem,
    issuerCertPem: opts.runnerCa.certPem,
    uris: [URI_PREFIX.runner + opts.runnerId],
    clientAuth: true,
    serverAuth: true,
    notBefore: new Date(notBefore),
    lifetimeMs: notAfter - notBefore,
  })
}
