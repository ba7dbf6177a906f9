// The identity matrix over real TLS 1.3 handshakes on 127.0.0.1: the edge's tunnel posture
// accepts a runner cert from the runner CA and names the runner from its URI SAN; every other
// client cert is refused with its typed code. Plus the direct-dial side (edge client certs).
import t from 'tap'
import { X509Certificate } from 'node:crypto'
import { initCa } from '../../certs/pki.js'
import {
  URI_PREFIX,
  edgeIdFromCert,
  parseSubjectAltName,
  runnerIdFromCert,
} from '../../certs/identity.js'
import { RevocationList } from '../../certs/revocation.js'
import { generateKeyPair, issueCertificate } from '../../certs/x509.js'
import { identityServer, issueRunner, sharedPki, tempStateDir, type Issued } from './_helpers.js'

const DAY = 24 * 3600_000

const pkiOnce = sharedPki(t, { edgeId: 'edge-3' })

t.test('identity matrix over mutual TLS', async (t) => {
  const dir = await tempStateDir(t)
  const pki = await pkiOnce()
  const { pki: foreign } = await initCa(await tempStateDir(t))
  const revocation = await RevocationList.open(dir)
  const server = await identityServer(t, { pki, revocation })

  // Raw issuance for certs the CSR path would never produce.
  // One key for all of them: RSA key generation is most of this test's time.
  const key = generateKeyPair()
  const custom = (over: Partial<Parameters<typeof issueCertificate>[0]>): Issued => {
    const certPem = issueCertificate({
      commonName: 'hopgate runner',
      publicKeyPem: key.publicKeyPem,
      issuerKeyPem: pki.runnerCa.keyPem,
      issuerCertPem: pki.runnerCa.certPem,
      clientAuth: true,
      lifetimeMs: DAY,
      ...over,
    })
    return { certPem, keyPem: key.privateKeyPem }
  }

  const good = issueRunner(pki, 'runner-a')
  const verdict = await server.attempt(good)
  t.same(
    verdict,
    {
      id: 'runner-a',
      serial: new X509Certificate(good.certPem).serialNumber,
    },
    'a runner cert from the runner CA is accepted and identified',
  )

  const lookalikeCa = generateKeyPair()
  const cases: Array<[string, Issued | undefined, string]> = [
    ['no client certificate', undefined, 'HOPGATE_ERR_PKI_NO_PEER_CERT'],
    [
      'cert from another install’s runner CA',
      issueRunner(foreign, 'runner-a'),
      'HOPGATE_ERR_PKI_WRONG_ISSUER',
    ],
    [
      'cert from a CA with the same subject name but another key',
      custom({ issuerKeyPem: lookalikeCa.privateKeyPem, uris: [URI_PREFIX.runner + 'runner-a'] }),
      'HOPGATE_ERR_PKI_WRONG_ISSUER',
    ],
    [
      'expired cert',
      issueRunner(pki, 'runner-a', { at: Date.now() - 3 * DAY }),
      'HOPGATE_ERR_PKI_CERT_EXPIRED',
    ],
    [
      'not yet valid cert',
      custom({ notBefore: new Date(Date.now() + DAY), uris: [URI_PREFIX.runner + 'runner-a'] }),
      'HOPGATE_ERR_PKI_CERT_EXPIRED',
    ],
    [
      'the edge client cert offered as a runner cert',
      { certPem: pki.edgeClient.chainPem, keyPem: pki.edgeClient.keyPem },
      'HOPGATE_ERR_PKI_WRONG_ISSUER',
    ],
    [
      'the edge server cert offered as a runner cert',
      { certPem: pki.edgeServer.certPem, keyPem: pki.edgeServer.keyPem },
      'HOPGATE_ERR_PKI_WRONG_ISSUER',
    ],
    [
      'two runner URI SANs',
      custom({ uris: [URI_PREFIX.runner + 'runner-a', URI_PREFIX.runner + 'runner-b'] }),
      'HOPGATE_ERR_PKI_BAD_IDENTITY',
    ],
    [
      'a runner and an edge URI SAN',
      custom({ uris: [URI_PREFIX.runner + 'runner-a', URI_PREFIX.edge + 'edge'] }),
      'HOPGATE_ERR_PKI_BAD_IDENTITY',
    ],
    [
      'no URI SAN, runner id only in the CN',
      custom({ commonName: 'runner-a' }),
      'HOPGATE_ERR_PKI_BAD_IDENTITY',
    ],
    [
      'a separator smuggled inside one URI',
      custom({ uris: ['urn:x, URI:urn:hopgate:runner:runner-a'] }),
      'HOPGATE_ERR_PKI_BAD_IDENTITY',
    ],
    [
      'an invalid runner id',
      custom({ uris: [URI_PREFIX.runner + 'Runner_A'] }),
      'HOPGATE_ERR_PKI_BAD_IDENTITY',
    ],
    [
      'runner CA cert without clientAuth',
      custom({ clientAuth: false, serverAuth: true, uris: [URI_PREFIX.runner + 'runner-a'] }),
      'HOPGATE_ERR_PKI_WRONG_USAGE',
    ],
    [
      'a CA cert with a runner URI',
      custom({ isCA: true, uris: [URI_PREFIX.runner + 'runner-a'] }),
      'HOPGATE_ERR_PKI_WRONG_USAGE',
    ],
  ]
  for (const [name, client, code] of cases) {
    t.same(await server.attempt(client), { code }, name)
  }

  const other = issueRunner(pki, 'runner-b')
  t.same(await server.attempt(other), {
    id: 'runner-b',
    serial: new X509Certificate(other.certPem).serialNumber,
  })
  await revocation.revoke('runner-b')
  t.same(await server.attempt(other), { code: 'HOPGATE_ERR_PKI_REVOKED' }, 'revoked runner')
  await revocation.revokeSerial(new X509Certificate(good.certPem).serialNumber)
  t.same(await server.attempt(good), { code: 'HOPGATE_ERR_PKI_REVOKED' }, 'revoked serial')
  const fresh = issueRunner(pki, 'runner-a')
  t.match(await server.attempt(fresh), { id: 'runner-a' }, 'a new cert for that runner still works')
})

t.test('direct dial: the agent accepts only the edge client cert', async (t) => {
  const pki = await pkiOnce()
  const server = await identityServer(t, { pki, kind: 'edge' })
  t.match(
    await server.attempt({ certPem: pki.edgeClient.certPem, keyPem: pki.edgeClient.keyPem }),
    {
      id: 'edge-3',
    },
  )
  t.same(await server.attempt(issueRunner(pki, 'runner-a')), {
    code: 'HOPGATE_ERR_PKI_WRONG_ISSUER',
  })
  t.same(
    await server.attempt({ certPem: pki.edgeServer.certPem, keyPem: pki.edgeServer.keyPem }),
    {
      code: 'HOPGATE_ERR_PKI_WRONG_USAGE',
    },
    'the edge server cert lacks clientAuth',
  )
})

t.test('runnerIdFromCert and edgeIdFromCert without TLS', async (t) => {
  const pki = await pkiOnce()
  const runnerCa = new X509Certificate(pki.runnerCa.certPem)
  const edgeCa = new X509Certificate(pki.edgeCa.certPem)
  const at = Date.UTC(2031, 5, 1)
  const cert = new X509Certificate(issueRunner(pki, 'r-1', { at }).certPem)
  t.equal(runnerIdFromCert(cert, runnerCa, at + 1000), 'r-1')
  t.equal(runnerIdFromCert(cert, runnerCa, new Date(at + DAY - 1000)), 'r-1', 'Date works too')
  t.throws(
    () => runnerIdFromCert(cert, runnerCa, at + DAY + 1000),
    {
      code: 'HOPGATE_ERR_PKI_CERT_EXPIRED',
    },
    '24 h lifetime',
  )
  t.throws(() => runnerIdFromCert(cert, edgeCa, at), { code: 'HOPGATE_ERR_PKI_WRONG_ISSUER' })
  t.throws(() => edgeIdFromCert(cert, runnerCa, at), { code: 'HOPGATE_ERR_PKI_BAD_IDENTITY' })
  const edgeClient = new X509Certificate(pki.edgeClient.certPem)
  t.throws(
    () => runnerIdFromCert(edgeClient, edgeCa, Date.now()),
    {
      code: 'HOPGATE_ERR_PKI_BAD_IDENTITY',
    },
    'edge cert checked against its own CA still names no runner',
  )
})

t.test('parseSubjectAltName', async (t) => {
  t.same(parseSubjectAltName(undefined), [])
  t.same(parseSubjectAltName('DNS:a.test, IP Address:127.0.0.1, URI:urn:hopgate:runner:x'), [
    { type: 'DNS', value: 'a.test' },
    { type: 'IP Address', value: '127.0.0.1' },
    { type: 'URI', value: 'urn:hopgate:runner:x' },
  ])
  t.same(parseSubjectAltName('URI:"urn:x\\u002c URI:urn:hopgate:runner:evil", DNS:b'), [
    { type: 'URI', value: 'urn:x, URI:urn:hopgate:runner:evil' },
    { type: 'DNS', value: 'b' },
  ])
  t.throws(() => parseSubjectAltName('garbage'), { code: 'HOPGATE_ERR_PKI_BAD_IDENTITY' })
  t.throws(() => parseSubjectAltName('URI:"unterminated'), { code: 'HOPGATE_ERR_PKI_BAD_IDENTITY' })
})
