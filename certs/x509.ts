// Builds and signs X.509 certificates. node-forge only assembles and signs; keys come from Node's
// crypto and every verification elsewhere is Node's own (tls, crypto.X509Certificate).
// This file owns no policy (lifetimes, SAN schemes, storage): callers pass it in.
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import forge from 'node-forge'

export interface KeyPairPem {
  /** PKCS#8 PEM. */
  privateKeyPem: string
  /** SPKI PEM. */
  publicKeyPem: string
}

/** RSA because node-forge signs only with RSA; 2048 bits is the floor Node's TLS accepts by default. */
export function generateKeyPair(bits = 2048): KeyPairPem {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', {
    modulusLength: bits,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  })
  return { privateKeyPem: privateKey, publicKeyPem: publicKey }
}

export interface CertificateRequest {
  /** Common name, informational only: identities are read from SANs, never the CN. */
  commonName: string
  /** The certified public key. */
  publicKeyPem: string
  /** Signing key; for a self-signed CA, the private half of `publicKeyPem`. */
  issuerKeyPem: string
  /** Issuer certificate; omitted for a self-signed root. */
  issuerCertPem?: string
  isCA?: boolean
  /** DNS names, IP addresses and URIs (e.g. `urn:hopgate:runner:<id>`). */
  dns?: string[]
  ips?: string[]
  uris?: string[]
  /** Extended key usages. */
  serverAuth?: boolean
  clientAuth?: boolean
  /** Validity start; defaults to one minute ago to absorb clock skew. */
  notBefore?: Date
  /** Lifetime in milliseconds from `notBefore`. */
  lifetimeMs: number
}

export function issueCertificate(req: CertificateRequest): string {
  const cert = forge.pki.createCertificate()
  cert.publicKey = forge.pki.publicKeyFromPem(req.publicKeyPem)
  // Positive 128-bit serial: the leading 01 keeps the DER integer from reading as negative.
  cert.serialNumber = '01' + randomBytes(16).toString('hex')
  const notBefore = req.notBefore ?? new Date(Date.now() - 60_000)
  cert.validity.notBefore = notBefore
  cert.validity.notAfter = new Date(notBefore.getTime() + req.lifetimeMs)
  const subject = [{ name: 'commonName', value: req.commonName }]
  cert.setSubject(subject)
  if (req.issuerCertPem) {
    cert.setIssuer(forge.pki.certificateFromPem(req.issuerCertPem).subject.attributes)
  } else {
    cert.setIssuer(subject)
  }
  const altNames: Array<{ type: number; value?: string; ip?: string }> = [
    ...(req.dns ?? []).map((value) => ({ type: 2, value })),
    ...(req.uris ?? []).map((value) => ({ type: 6, value })),
    ...(req.ips ?? []).map((ip) => ({ type: 7, ip })),
  ]
  const extensions: object[] = [
    { name: 'basicConstraints', cA: req.isCA === true, critical: true },
    req.isCA
      ? { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true }
      : { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]
  if (req.serverAuth || req.clientAuth) {
    extensions.push({
      name: 'extKeyUsage',
      serverAuth: req.serverAuth === true,
      clientAuth: req.clientAuth === true,
    })
  }
  if (altNames.length > 0) extensions.push({ name: 'subjectAltName', altNames })
  cert.setExtensions(extensions)
  cert.sign(forge.pki.privateKeyFromPem(req.issuerKeyPem), forge.md.sha256.create())
  return forge.pki.certificateToPem(cert)
}
