// certs/pki.ts: the state-dir layout and modes, idempotent init that never overwrites, the
// certificates' roles as Node's crypto reads them, and loadPki refusing inconsistent state.
import t from 'tap'
import { X509Certificate, createHash } from 'node:crypto'
import { chmod, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { CA_LIFETIME_MS, EDGE_CERT_LIFETIME_MS, initCa, loadPki } from '../../certs/pki.js'
import { EKU_CLIENT_AUTH, EKU_SERVER_AUTH, edgeIdFromCert } from '../../certs/identity.js'
import { wallNow } from '../../certs/state.js'
import { systemClock } from '../../shared/clock.js'
import { tempStateDir, wallManualClock } from './_helpers.js'

const mode = async (p: string): Promise<number> => (await stat(p)).mode & 0o777
const PARTS = ['runner-ca', 'edge-ca', 'edge-server', 'edge-client']

t.test('initCa creates both CAs and the edge certs with private modes', async (t) => {
  const dir = await tempStateDir(t)
  const at = Date.UTC(2030, 0, 1)
  const { pki, created } = await initCa(dir, {
    clock: wallManualClock(at),
    edgeId: 'edge-7',
    dns: ['edge.example.test'],
    ips: ['127.0.0.1'],
  })
  t.equal(created.length, 8, 'four keys and four certs written')
  t.equal(await mode(join(dir, 'pki')), 0o700, 'pki dir 0700')
  for (const part of PARTS) {
    t.equal(await mode(join(dir, 'pki', `${part}.key`)), 0o600, `${part}.key is 0600`)
    t.equal(await mode(join(dir, 'pki', `${part}.crt`)), 0o644, `${part}.crt is 0644`)
  }
  const runnerCa = new X509Certificate(pki.runnerCa.certPem)
  const edgeCa = new X509Certificate(pki.edgeCa.certPem)
  t.ok(runnerCa.ca && edgeCa.ca, 'both are CAs')
  t.not(runnerCa.subject, edgeCa.subject, 'distinct CA subjects')
  t.equal(Date.parse(runnerCa.validTo) - Date.parse(runnerCa.validFrom), CA_LIFETIME_MS)
  t.ok(Date.parse(runnerCa.validFrom) <= at, 'CA valid from the injected time (backdated)')

  const server = new X509Certificate(pki.edgeServer.certPem)
  t.ok(server.checkIssued(edgeCa) && server.verify(edgeCa.publicKey), 'server cert from edge CA')
  t.notOk(server.verify(runnerCa.publicKey), 'not from the runner CA')
  t.same(server.keyUsage, [EKU_SERVER_AUTH], 'server cert: EKU serverAuth only')
  t.ok(server.checkHost('edge.example.test'), 'DNS SAN')
  t.ok(server.checkIP('127.0.0.1'), 'IP SAN')
  t.equal(Date.parse(server.validTo) - Date.parse(server.validFrom), EDGE_CERT_LIFETIME_MS)

  const client = new X509Certificate(pki.edgeClient.certPem)
  t.same(client.keyUsage, [EKU_CLIENT_AUTH], 'client cert: EKU clientAuth only')
  t.equal(client.subjectAltName, 'URI:urn:hopgate:edge:edge-7')
  t.equal(edgeIdFromCert(client, edgeCa, at), 'edge-7', 'edge id verified against the edge CA')
  t.equal(pki.edgeId, 'edge-7')
  t.equal(pki.edgeServer.chainPem, pki.edgeServer.certPem + pki.edgeCa.certPem, 'chain has CA')

  const digest = createHash('sha256').update(edgeCa.raw).digest()
  t.equal(pki.edgeCa.fingerprint.hex, digest.toString('hex'))
  t.equal(pki.edgeCa.fingerprint.base64url, digest.toString('base64url'))
  t.equal(pki.edgeCa.fingerprint.hex, edgeCa.fingerprint256.replace(/:/g, '').toLowerCase())
})

t.test('initCa is idempotent and loadPki reads the same PKI back', async (t) => {
  const dir = await tempStateDir(t)
  const first = await initCa(dir)
  const before = await readFile(join(dir, 'pki', 'runner-ca.key'), 'utf8')
  const second = await initCa(dir, { edgeId: 'other', dns: ['other.test'] })
  t.same(second.created, [], 'nothing written the second time')
  t.equal(await readFile(join(dir, 'pki', 'runner-ca.key'), 'utf8'), before, 'key untouched')
  t.equal(second.pki.edgeId, 'edge', 'existing edge certs kept, options do not overwrite')
  const loaded = await loadPki(dir)
  t.same(loaded.runnerCa.fingerprint, first.pki.runnerCa.fingerprint)
  t.same(loaded.edgeCa.fingerprint, first.pki.edgeCa.fingerprint)
})

t.test('initCa completes missing edge certs from the existing edge CA', async (t) => {
  const dir = await tempStateDir(t)
  const first = await initCa(dir)
  await rm(join(dir, 'pki', 'edge-client.key'))
  await rm(join(dir, 'pki', 'edge-client.crt'))
  const again = await initCa(dir)
  t.equal(again.created.length, 2, 'only the client pair re-issued')
  t.same(again.pki.edgeCa.fingerprint, first.pki.edgeCa.fingerprint, 'edge CA unchanged')
  t.not(again.pki.edgeClient.fingerprint.hex, first.pki.edgeClient.fingerprint.hex)
})

t.test('half-written or inconsistent state is refused, never overwritten', async (t) => {
  const dir = await tempStateDir(t)
  const { pki } = await initCa(dir)
  await rm(join(dir, 'pki', 'edge-ca.crt'))
  await t.rejects(initCa(dir), { code: 'HOPGATE_ERR_PKI_STATE_INVALID' }, 'key without cert')
  t.equal(await readFile(join(dir, 'pki', 'edge-ca.key'), 'utf8'), pki.edgeCa.keyPem, 'kept')
  await t.rejects(loadPki(dir), { code: 'HOPGATE_ERR_PKI_STATE_INVALID' }, 'load refuses too')

  await writeFile(join(dir, 'pki', 'edge-ca.crt'), pki.runnerCa.certPem)
  await t.rejects(loadPki(dir), { code: 'HOPGATE_ERR_PKI_STATE_INVALID' }, 'key/cert mismatch')

  const other = await tempStateDir(t)
  const { pki: otherPki } = await initCa(other)
  await writeFile(join(dir, 'pki', 'edge-ca.crt'), otherPki.edgeCa.certPem)
  await writeFile(join(dir, 'pki', 'edge-ca.key'), otherPki.edgeCa.keyPem)
  await t.rejects(loadPki(dir), /edge server cert/, 'edge certs not from this edge CA')
})

t.test('a world-readable CA key is refused', async (t) => {
  const dir = await tempStateDir(t)
  await initCa(dir)
  await chmod(join(dir, 'pki', 'runner-ca.key'), 0o644)
  await t.rejects(loadPki(dir), { code: 'HOPGATE_ERR_PKI_STATE_INVALID' })
})

t.test('bad options and the monotonic clock are refused', async (t) => {
  const dir = await tempStateDir(t)
  await t.rejects(initCa(dir, { edgeId: 'Edge_1' }), { code: 'HOPGATE_ERR_PKI_ID_INVALID' })
  await t.rejects(initCa(dir, { ips: ['nope'] }), { code: 'HOPGATE_ERR_CONFIG_INVALID' })
  await t.rejects(initCa(dir, { clock: systemClock }), TypeError)
  t.throws(() => wallNow(systemClock), TypeError)
  t.equal((await initCa(dir)).created.length, 8, 'refused attempts wrote nothing')
})
