// OpenSSH user certificates made by real ssh-keygen: parsing, CA trust, signature, type,
// principals, validity window, critical options; tampered and truncated blobs fail with typed
// errors; and the authenticator's identity comes from the certified key's own signature.
import t from 'tap'
import fc from 'fast-check'
import { sign } from 'node:crypto'
import { isHopgateError } from '../../shared/errors.js'
import { parseCertificate, verifyCertificate, trustedCaSet, inCidr } from '../../edge/ssh/cert.js'
import { fingerprint, sshString } from '../../edge/ssh/wire.js'
import { keyFromText } from '../../edge/ssh/host-key.js'
import { SshAuthenticator } from '../../edge/ssh/auth.js'
import { EmbeddedAccessStore } from '../../edge/auth/embedded-access.js'
import { tempDir } from '../helpers/echo.js'
import * as F from './cert-fixtures.js'

const hex = (h: string): Buffer => Buffer.from(h, 'hex')
const CA = new Set([fingerprint(hex(F.CA_PUB))])
const JUNE_2026 = Date.UTC(2026, 5, 1)
const check = { trustedCas: CA, account: 'alice', nowMs: JUNE_2026, clientIp: '127.0.0.1' }
const code = (fn: () => unknown): string | undefined => {
  try {
    fn()
    return undefined
  } catch (err) {
    return isHopgateError(err) ? err.code : `untyped: ${String(err)}`
  }
}

t.test('parses what ssh-keygen wrote', async (tt) => {
  const c = parseCertificate(hex(F.CERT_OK))
  tt.equal(c.certType, 'ssh-ed25519-cert-v01@openssh.com')
  tt.equal(c.serial, 7n)
  tt.equal(c.keyId, 'alice-cert')
  tt.same(c.principals, ['alice', 'bob'])
  tt.equal(c.type, 1, 'a user certificate')
  tt.equal(c.validAfter, BigInt(Date.UTC(2026, 0, 1) / 1000))
  tt.equal(c.validBefore, BigInt(Date.UTC(2027, 0, 1) / 1000))
  tt.ok(c.key.blob.equals(hex(F.USER_PUB)), 'the certified key is the user key')
  tt.equal(c.caFingerprint, fingerprint(hex(F.CA_PUB)))
  tt.ok(c.extensions.has('permit-pty') && c.extensions.has('permit-port-forwarding'))
  tt.equal(c.criticalOptions.size, 0)
  tt.equal(parseCertificate(hex(F.CERT_ECDSA)).key.type, 'ecdsa-sha2-nistp256')
})

t.test('verification: trust, signature, type, principals, validity, options', async (tt) => {
  const ok = parseCertificate(hex(F.CERT_OK))
  tt.equal(
    code(() => verifyCertificate(ok, check)),
    undefined,
    'valid for alice in June 2026',
  )
  tt.equal(
    code(() => verifyCertificate(ok, { ...check, account: 'bob' })),
    undefined,
    'and bob',
  )
  tt.equal(
    code(() => verifyCertificate(ok, { ...check, account: 'carol' })),
    'HOPGATE_ERR_SSH_CERT_PRINCIPAL',
  )
  tt.equal(
    code(() => verifyCertificate(ok, { ...check, nowMs: Date.UTC(2025, 11, 31) })),
    'HOPGATE_ERR_SSH_CERT_EXPIRED',
    'not yet valid',
  )
  tt.equal(
    code(() => verifyCertificate(ok, { ...check, nowMs: Date.UTC(2027, 0, 1) })),
    'HOPGATE_ERR_SSH_CERT_EXPIRED',
    'expired (valid_before is exclusive)',
  )
  tt.equal(
    code(() => verifyCertificate(ok, { ...check, trustedCas: new Set() })),
    'HOPGATE_ERR_SSH_CERT_UNTRUSTED',
  )
  const other = parseCertificate(hex(F.CERT_OTHER_CA))
  tt.equal(
    code(() => verifyCertificate(other, check)),
    'HOPGATE_ERR_SSH_CERT_UNTRUSTED',
    'signed by a CA nobody trusts',
  )
  tt.equal(
    code(() =>
      verifyCertificate(other, {
        ...check,
        trustedCas: new Set([fingerprint(hex(F.OTHER_CA_PUB))]),
      }),
    ),
    undefined,
    'fine once that CA is trusted',
  )
  // Rename principal "alice" to "alicf": parses, but the CA signature no longer covers it.
  const tampered = Buffer.from(
    F.CERT_OK.replace(
      '00000005' + Buffer.from('alice').toString('hex'),
      '00000005' + Buffer.from('alicf').toString('hex'),
    ),
    'hex',
  )
  const tc = parseCertificate(tampered)
  tt.same(tc.principals, ['alicf', 'bob'])
  tt.equal(
    code(() => verifyCertificate(tc, { ...check, account: 'alicf' })),
    'HOPGATE_ERR_SSH_CERT_UNTRUSTED',
    'tampered principal: bad signature',
  )
  const host = parseCertificate(hex(F.CERT_HOST))
  tt.equal(
    code(() => verifyCertificate(host, check)),
    'HOPGATE_ERR_SSH_CERT_UNTRUSTED',
    'a host certificate is not a user one',
  )
  const src = parseCertificate(hex(F.CERT_SOURCE_ADDRESS))
  tt.equal(
    code(() => verifyCertificate(src, { ...check, clientIp: '10.1.2.3' })),
    undefined,
    'source-address matches',
  )
  tt.equal(
    code(() => verifyCertificate(src, { ...check, clientIp: '::ffff:10.9.9.9' })),
    undefined,
    'v4-mapped too',
  )
  tt.equal(
    code(() => verifyCertificate(src, check)),
    'HOPGATE_ERR_SSH_CERT_OPTION',
    'source-address refuses 127.0.0.1',
  )
  const force = parseCertificate(hex(F.CERT_FORCE_COMMAND))
  tt.equal(
    code(() => verifyCertificate(force, check)),
    'HOPGATE_ERR_SSH_CERT_OPTION',
    'force-command is not honoured, so it refuses',
  )
  tt.equal(
    code(() => verifyCertificate(parseCertificate(hex(F.CERT_ECDSA)), check)),
    undefined,
    'ECDSA user key under an ed25519 CA',
  )
})

t.test('bad bytes give typed errors only', async (tt) => {
  const full = hex(F.CERT_OK)
  const codes = new Set<string | undefined>()
  for (let n = 0; n < full.length; n++) codes.add(code(() => parseCertificate(full.subarray(0, n))))
  tt.ok(
    [...codes].every(
      (c) => c === 'HOPGATE_ERR_SSH_MALFORMED' || c === 'HOPGATE_ERR_SSH_UNSUPPORTED_KEY',
    ),
    `every truncation is refused, typed: ${[...codes].join(', ')}`,
  )
  tt.equal(
    code(() => parseCertificate(Buffer.concat([full, Buffer.from([0])]))),
    'HOPGATE_ERR_SSH_MALFORMED',
    'trailing byte',
  )
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 600 }), fc.nat(full.length - 1), (junk, at) => {
      const mutated = Buffer.from(full)
      Buffer.from(junk).copy(mutated, at)
      const c = code(() => verifyCertificate(parseCertificate(mutated), check))
      return c === undefined ? mutated.equals(full) || true : c.startsWith('HOPGATE_ERR_SSH_')
    }),
    { numRuns: 500 },
  )
  tt.pass('500 mutated certificates: typed refusals, never a crash')
})

t.test('cidr and CA config helpers', async (tt) => {
  tt.ok(inCidr('10.1.2.3', '10.0.0.0/8'))
  tt.notOk(inCidr('11.1.2.3', '10.0.0.0/8'))
  tt.ok(inCidr('2001:db8::1', '2001:db8::/32'))
  tt.notOk(inCidr('2001:db9::1', '2001:db8::/32'))
  tt.ok(inCidr('192.168.1.7', '192.168.1.7'))
  tt.notOk(inCidr('192.168.1.7', 'junk/99'))
  const line = `ssh-ed25519 ${hex(F.CA_PUB).toString('base64')} ca`
  tt.same([...trustedCaSet(['# comment', '', line])], [fingerprint(hex(F.CA_PUB))])
})

t.test('authenticator: the identity is the certified key that signed', async (tt) => {
  const dir = await tempDir(tt, 'access')
  const access = await EmbeddedAccessStore.open({ stateDir: dir })
  tt.teardown(() => access.close())
  const P = '0f8fad5b-d9cb-469f-a165-70867728950e'
  await access.grant(P, 'bob')
  const auth = new SshAuthenticator({ access, trustedCas: CA, wallClock: { now: () => JUNE_2026 } })
  const priv = keyFromText(F.USER_PRIVATE)
  const data = Buffer.from('session-id and request')
  const sigBlob = Buffer.concat([sshString('ssh-ed25519'), sshString(sign(null, data, priv))])
  const base = {
    user: { kind: 'project' as const, project: P },
    algo: 'ssh-ed25519-cert-v01@openssh.com',
    keyBlob: hex(F.CERT_OK),
    clientIp: '127.0.0.1',
  }
  const id = await auth.check({ ...base, signature: sigBlob, signedData: data })
  tt.equal(id.account, 'bob', 'the principal that collaborates on the project')
  tt.equal(id.via, 'cert')
  tt.equal(id.fingerprint, fingerprint(hex(F.USER_PUB)))
  await tt.rejects(
    auth.check({ ...base, signature: sigBlob, signedData: Buffer.from('other') }),
    { code: 'HOPGATE_ERR_SSH_AUTH_FAILED' },
    'a signature over other data',
  )
  await tt.rejects(auth.check({ ...base, keyBlob: hex(F.CERT_OTHER_CA) }), {
    code: 'HOPGATE_ERR_SSH_CERT_UNTRUSTED',
  })
  await tt.rejects(
    auth.check({
      ...base,
      user: { kind: 'project', project: '1b4e28ba-2fa1-11d2-883f-0016d3cca427' },
    }),
    { code: 'HOPGATE_ERR_SSH_NO_ACCESS' },
    'another project',
  )
  await tt.rejects(auth.check({ ...base, user: { kind: 'account', account: 'carol' } }), {
    code: 'HOPGATE_ERR_SSH_CERT_PRINCIPAL',
  })
  const jump = await auth.check({ ...base, user: { kind: 'account', account: 'alice' } })
  tt.equal(jump.account, 'alice', 'ProxyJump: the username is the principal')
  await tt.rejects(
    auth.check({ ...base, algo: 'ssh-ed25519', keyBlob: hex(F.USER_PUB) }),
    { code: 'HOPGATE_ERR_SSH_AUTH_FAILED' },
    'the bare key is not registered',
  )
  await access.addSshKey({
    account: 'bob',
    fingerprint: fingerprint(hex(F.USER_PUB)),
    type: 'ssh-ed25519',
    publicKey: hex(F.USER_PUB).toString('base64'),
    comment: '',
  })
  const plain = await auth.check({
    ...base,
    algo: 'ssh-ed25519',
    keyBlob: hex(F.USER_PUB),
    signature: sign(null, data, priv),
    signedData: data,
  })
  tt.same([plain.account, plain.via], ['bob', 'key'], 'a registered plain key')
  await tt.rejects(
    auth.check({
      ...base,
      algo: 'ssh-ed25519',
      keyBlob: hex(F.USER_PUB),
      signature: Buffer.alloc(64),
      signedData: data,
    }),
    { code: 'HOPGATE_ERR_SSH_AUTH_FAILED' },
    'a forged signature',
  )
})
