// certs/csr.ts: the edge accepts only well-signed RSA 2048-8192 CSRs and issues a 24 h
// clientAuth cert naming the runner from the token, whatever the CSR's subject claims.
import t from 'tap'
import { X509Certificate, generateKeyPairSync, sign } from 'node:crypto'
import forge from 'node-forge'
import { checkRunnerCsr, createRunnerKeyAndCsr, signRunnerCsr } from '../../certs/csr.js'
import { generateKeyPair, issueCertificate } from '../../certs/x509.js'
import { sharedPki, wallManualClock } from './_helpers.js'

const { asn1 } = forge
const pkiOnce = sharedPki(t)

/** A CSR assembled by hand so the key type and signature can be anything Node can make. */
function handCsr(opts: {
  spkiDer: Buffer
  sigOid: string
  signTbs: (tbs: Buffer) => Buffer
}): string {
  const info = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.INTEGER, false, '\x00'),
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, []),
    asn1.fromDer(opts.spkiDer.toString('binary')),
    asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, true, []),
  ])
  const tbs = Buffer.from(asn1.toDer(info).getBytes(), 'binary')
  const sig = opts.signTbs(tbs)
  const csr = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
    info,
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
      asn1.create(
        asn1.Class.UNIVERSAL,
        asn1.Type.OID,
        false,
        asn1.oidToDer(opts.sigOid).getBytes(),
      ),
      asn1.create(asn1.Class.UNIVERSAL, asn1.Type.NULL, false, ''),
    ]),
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.BITSTRING, false, '\x00' + sig.toString('binary')),
  ])
  const der = Buffer.from(asn1.toDer(csr).getBytes(), 'binary').toString('base64')
  return `-----BEGIN CERTIFICATE REQUEST-----\n${der.replace(/.{64}/g, '$&\n')}\n-----END CERTIFICATE REQUEST-----\n`
}

const rsa = (bits: number) =>
  generateKeyPairSync('rsa', { modulusLength: bits, publicExponent: 65537 })

t.test('a CSR from createRunnerKeyAndCsr passes and is signed for the token runner', async (t) => {
  const pki = await pkiOnce()
  const { keyPem, csrPem } = createRunnerKeyAndCsr()
  t.match(keyPem, /^-----BEGIN PRIVATE KEY-----/)
  checkRunnerCsr(csrPem)
  const at = Date.UTC(2032, 2, 3)
  const cert = new X509Certificate(
    signRunnerCsr({
      csrPem,
      runnerId: 'runner-5',
      runnerCa: pki.runnerCa,
      clock: wallManualClock(at),
    }),
  )
  t.equal(cert.subjectAltName, 'URI:urn:hopgate:runner:runner-5')
  t.equal(Date.parse(cert.validTo), at + 24 * 3600_000, 'expires 24 h after issue')
  t.ok(Date.parse(cert.validFrom) < at, 'backdated for skew')
  t.match(cert.serialNumber, /^[0-9A-F]{30,}$/, 'random serial')
  t.not(
    cert.serialNumber,
    new X509Certificate(signRunnerCsr({ csrPem, runnerId: 'runner-5', runnerCa: pki.runnerCa }))
      .serialNumber,
  )
  t.throws(() => signRunnerCsr({ csrPem, runnerId: 'Bad!', runnerCa: pki.runnerCa }), {
    code: 'HOPGATE_ERR_PKI_ID_INVALID',
  })
})

t.test('the CSR subject is ignored', async (t) => {
  const pki = await pkiOnce()
  const key = generateKeyPair()
  const csr = forge.pki.createCertificationRequest()
  csr.publicKey = forge.pki.publicKeyFromPem(key.publicKeyPem)
  csr.setSubject([{ name: 'commonName', value: 'urn:hopgate:runner:admin' }])
  csr.sign(forge.pki.privateKeyFromPem(key.privateKeyPem), forge.md.sha256.create())
  const csrPem = forge.pki.certificationRequestToPem(csr)
  const cert = new X509Certificate(
    signRunnerCsr({ csrPem, runnerId: 'r-1', runnerCa: pki.runnerCa }),
  )
  t.equal(cert.subjectAltName, 'URI:urn:hopgate:runner:r-1')
  t.notMatch(cert.subject, /admin/)
})

t.test('weak, foreign or badly signed CSRs are refused', async (t) => {
  const good = rsa(2048)
  const spki = (k: ReturnType<typeof rsa>) => k.publicKey.export({ type: 'spki', format: 'der' })
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const cases: Array<[string, unknown]> = [
    ['not a string', 42],
    ['not PEM', 'hello'],
    [
      'RSA 1024',
      handCsr({ spkiDer: spki(rsa(1024)), sigOid: '1.2.840.113549.1.1.11', signTbs: (b) => b }),
    ],
    [
      'SHA-1 signature',
      handCsr({
        spkiDer: spki(good),
        sigOid: '1.2.840.113549.1.1.5',
        signTbs: (b) => sign('sha1', b, good.privateKey),
      }),
    ],
    [
      'signed by another key',
      handCsr({
        spkiDer: spki(good),
        sigOid: '1.2.840.113549.1.1.11',
        signTbs: (b) => sign('sha256', b, rsa(2048).privateKey),
      }),
    ],
    [
      'EC P-256 (forge cannot certify it)',
      handCsr({
        spkiDer: ec.publicKey.export({ type: 'spki', format: 'der' }),
        sigOid: '1.2.840.10045.4.3.2',
        signTbs: (b) => sign('sha256', b, ec.privateKey),
      }),
    ],
  ]
  const ok = handCsr({
    spkiDer: spki(good),
    sigOid: '1.2.840.113549.1.1.11',
    signTbs: (b) => sign('sha256', b, good.privateKey),
  })
  t.doesNotThrow(() => checkRunnerCsr(ok), 'the hand-made CSR shape itself is accepted')
  const lines = ok.split('\n')
  lines[lines.length - 3] = lines[lines.length - 3]!.replace(/^./, (c) => (c === 'A' ? 'B' : 'A'))
  cases.push(['a flipped signature byte', lines.join('\n')])
  for (const [name, csr] of cases) {
    t.throws(() => checkRunnerCsr(csr), { code: 'HOPGATE_ERR_JOIN_CSR_INVALID' }, name)
  }
})

t.test('a runner cert never outlives its CA', async (t) => {
  const ca = generateKeyPair()
  const now = Date.UTC(2030, 0, 1)
  const caCert = issueCertificate({
    commonName: 'short CA',
    publicKeyPem: ca.publicKeyPem,
    issuerKeyPem: ca.privateKeyPem,
    isCA: true,
    notBefore: new Date(now - 1000),
    lifetimeMs: 3600_000,
  })
  const runnerCa = { certPem: caCert, keyPem: ca.privateKeyPem }
  const { csrPem } = createRunnerKeyAndCsr()
  const cert = new X509Certificate(
    signRunnerCsr({ csrPem, runnerId: 'r', runnerCa, clock: wallManualClock(now) }),
  )
  t.equal(cert.validTo, new X509Certificate(caCert).validTo)
  t.throws(
    () =>
      signRunnerCsr({
        csrPem,
        runnerId: 'r',
        runnerCa,
        clock: wallManualClock(now + 2 * 3600_000),
      }),
    {
      code: 'HOPGATE_ERR_PKI_CERT_EXPIRED',
    },
  )
})
