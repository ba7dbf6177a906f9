// Throwaway PKI for tests, benchmarks and the demo: one CA, a server cert for 127.0.0.1 and
// localhost, a client cert. Not the production PKI (that keeps two CAs and persists keys).
import { generateKeyPair, issueCertificate } from './x509.js'

export interface TestPki {
  caCert: string
  serverCert: string
  serverKey: string
  clientCert: string
  clientKey: string
}

let cached: TestPki | undefined

/** One PKI per process: RSA key generation costs tens of milliseconds. */
export function makeTestPki(): TestPki {
  if (cached) return cached
  const day = 24 * 3600 * 1000
  const ca = generateKeyPair()
  const caCert = issueCertificate({
    commonName: 'hopgate test CA',
    publicKeyPem: ca.publicKeyPem,
    issuerKeyPem: ca.privateKeyPem,
    isCA: true,
    lifetimeMs: day,
  })
  const server = generateKeyPair()
  const serverCert = issueCertificate({
    commonName: 'hopgate test server',
    publicKeyPem: server.publicKeyPem,
    issuerKeyPem: ca.privateKeyPem,
    issuerCertPem: caCert,
    dns: ['localhost'],
    ips: ['127.0.0.1'],
    serverAuth: true,
    lifetimeMs: day,
  })
  const client = generateKeyPair()
  const clientCert = issueCertificate({
    commonName: 'hopgate test client',
    publicKeyPem: client.publicKeyPem,
    issuerKeyPem: ca.privateKeyPem,
    issuerCertPem: caCert,
    uris: ['urn:hopgate:runner:test'],
    clientAuth: true,
    lifetimeMs: day,
  })
  cached = {
    caCert,
    serverCert,
    serverKey: server.privateKeyPem,
    clientCert,
    clientKey: client.privateKeyPem,
  }
  return cached
}
