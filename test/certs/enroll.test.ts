// Enrollment end to end over TLS 1.3 on 127.0.0.1: an agent joins with a token, stores its
// identity, and that cert then passes a strict mutual-TLS server trusting the runner CA. The
// agent refuses an edge whose CA is not the pinned one before sending its token, an edge that
// does not speak hopgate-join/1, and a reply whose cert is not for its key.
import t from 'tap'
import { X509Certificate } from 'node:crypto'
import { stat } from 'node:fs/promises'
import tls from 'node:tls'
import type { AddressInfo } from 'node:net'
import {
  joinOverTls,
  loadRunnerIdentity,
  saveRunnerIdentity,
  type RunnerIdentity,
} from '../../certs/enroll.js'
import { EKU_CLIENT_AUTH, EKU_SERVER_AUTH, runnerIdFromCert } from '../../certs/identity.js'
import { wallClock } from '../../certs/state.js'
import { FileTokenStore, createJoinToken } from '../../certs/tokens.js'
import { JOIN_ALPN, encodeMessage, readOneMessage } from '../../certs/wire.js'
import { generateKeyPair } from '../../certs/x509.js'
import { issueRunner, sharedPki, tempStateDir } from './_helpers.js'
import { setup } from './_join.js'

const pkiOnce = sharedPki(t)
const foreignOnce = sharedPki(t)

t.test('join, store the identity, then pass a strict mutual-TLS server', async (t) => {
  const { pki, server, token } = await setup(t, pkiOnce)
  const tok = await token()
  const id = await joinOverTls({ host: '127.0.0.1', port: server.port, token: tok })
  t.match(await server.next(), { ok: true, runnerId: 'runner-1' })
  t.equal(id.runnerId, 'runner-1')
  t.equal(id.edgeCaPem, pki.edgeCa.certPem)
  t.equal(id.runnerCaPem, pki.runnerCa.certPem)
  const cert = new X509Certificate(id.certPem)
  t.equal(cert.subjectAltName, 'URI:urn:hopgate:runner:runner-1')
  t.same(
    [...(cert.keyUsage ?? [])].sort(),
    [EKU_CLIENT_AUTH, EKU_SERVER_AUTH].sort(),
    'clientAuth to dial edges, serverAuth for the direct connector',
  )
  t.notOk(cert.ca)
  const life = Date.parse(cert.validTo) - Date.now()
  t.ok(life > 23.9 * 3600_000 && life <= 24 * 3600_000, '24 h from now')

  const agentDir = await tempStateDir(t)
  await saveRunnerIdentity(agentDir, id)
  t.equal((await stat(`${agentDir}/agent`)).mode & 0o777, 0o700, 'agent dir 0700')
  t.equal((await stat(`${agentDir}/agent/runner.key`)).mode & 0o777, 0o600, 'key 0600')
  const loaded = await loadRunnerIdentity(agentDir)
  t.same(loaded, id, 'identity reads back')

  // OpenSSL's own verification (rejectUnauthorized) plus the URI SAN: the edge's real gate.
  const runnerCa = new X509Certificate(pki.runnerCa.certPem)
  const mtls = tls.createServer(
    {
      cert: pki.edgeServer.chainPem,
      key: pki.edgeServer.keyPem,
      ca: [pki.runnerCa.certPem],
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.3',
    },
    (s) => s.end(runnerIdFromCert(s.getPeerX509Certificate()!, runnerCa, Date.now())),
  )
  await new Promise<void>((resolve) => mtls.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => mtls.close(() => resolve())))
  const answer = await new Promise<string>((resolve, reject) => {
    const s = tls.connect({
      host: '127.0.0.1',
      port: (mtls.address() as AddressInfo).port,
      ca: [loaded.edgeCaPem],
      cert: loaded.certPem,
      key: loaded.keyPem,
    })
    let text = ''
    s.on('data', (d: Buffer) => (text += d.toString()))
    s.on('end', () => resolve(text))
    s.on('error', reject)
  })
  t.equal(answer, 'runner-1', 'the issued cert is accepted and names its runner')

  await t.rejects(
    joinOverTls({ host: '127.0.0.1', port: server.port, token: tok }),
    {
      code: 'HOPGATE_ERR_JOIN_TOKEN_USED',
    },
    'a used token is refused',
  )
  t.match(await server.next(), { ok: false, code: 'HOPGATE_ERR_JOIN_TOKEN_USED' })
})

t.test('the agent refuses an edge that does not match its pin, before sending', async (t) => {
  const { server, tokens } = await setup(t, pkiOnce)
  const foreign = await foreignOnce()
  const tok = await createJoinToken(tokens, {
    runnerId: 'runner-1',
    ttlMs: 60_000,
    edgeCaFingerprint: foreign.edgeCa.fingerprint.base64url,
    clock: wallClock,
  })
  await t.rejects(joinOverTls({ host: '127.0.0.1', port: server.port, token: tok }), {
    code: 'HOPGATE_ERR_JOIN_EDGE_UNTRUSTED',
  })
  t.match(
    await server.next(),
    { ok: false, code: /^(HOPGATE_ERR_JOIN_CONNECTION_FAILED|TLS_CLIENT_ERROR)$/ },
    'edge got no message',
  )
  t.notOk((await tokens.list())[0]?.usedAt, 'token not spent')
  await t.rejects(joinOverTls({ host: '127.0.0.1', port: server.port, token: 'hg1.nope' }), {
    code: 'HOPGATE_ERR_JOIN_TOKEN_MALFORMED',
  })
})

t.test('the agent requires the join ALPN and checks the reply', async (t) => {
  const { server, token } = await setup(t, pkiOnce, { alpn: null })
  await t.rejects(joinOverTls({ host: '127.0.0.1', port: server.port, token: await token() }), {
    code: 'HOPGATE_ERR_JOIN_ALPN_MISMATCH',
  })
  await server.next()

  // An edge holding the pinned CA but answering with a cert for some other key.
  const dir = await tempStateDir(t)
  const pki = await pkiOnce()
  const stray = issueRunner(pki, 'runner-1').certPem
  const evil = tls.createServer(
    { cert: pki.edgeServer.chainPem, key: pki.edgeServer.keyPem, ALPNProtocols: [JOIN_ALPN] },
    (s) => {
      s.on('error', () => undefined)
      void readOneMessage(s, { clock: wallClock, timeoutMs: 10_000 }).then(() =>
        s.end(
          encodeMessage({
            type: 'joined',
            cert: stray,
            runnerCa: pki.runnerCa.certPem,
            edgeCa: pki.edgeCa.certPem,
            runnerId: 'runner-1',
          }),
        ),
      )
    },
  )
  await new Promise<void>((resolve) => evil.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => evil.close(() => resolve())))
  const tok = await createJoinToken(new FileTokenStore(dir), {
    runnerId: 'runner-1',
    ttlMs: 60_000,
    edgeCaFingerprint: pki.edgeCa.fingerprint.base64url,
    clock: wallClock,
  })
  const port = (evil.address() as AddressInfo).port
  const err: unknown = await joinOverTls({ host: '127.0.0.1', port, token: tok }).catch(
    (e: unknown) => e,
  )
  t.match(err, { code: 'HOPGATE_ERR_JOIN_BAD_MESSAGE', message: /not for our key/ })
})

t.test('loadRunnerIdentity refuses a mismatched key', async (t) => {
  const { server, token } = await setup(t, pkiOnce)
  const id: RunnerIdentity = await joinOverTls({
    host: '127.0.0.1',
    port: server.port,
    token: await token(),
  })
  const dir = await tempStateDir(t)
  await saveRunnerIdentity(dir, { ...id, keyPem: generateKeyPair().privateKeyPem })
  await t.rejects(loadRunnerIdentity(dir), { code: 'HOPGATE_ERR_PKI_STATE_INVALID' })
})
