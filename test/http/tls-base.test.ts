// The HTTP ingress as HTTPS (a cert and key given) under an enforced base path, with curl: the
// page through `/hub/{project}/server/{port}/`, X-Forwarded-Proto https at the project, the
// one-time link's cookie marked Secure and scoped to `/hub/{project}/`, and targets outside the
// base path refused.
import t from 'tap'
import { spawn } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { makeTestPki } from '../../certs/testing.js'
import { tempDir } from '../helpers/echo.js'
import { startHttpCluster, rawValues, P1 } from './_cluster.js'

function curl(args: string[]): Promise<{ code: number | null; stdout: string }> {
  const child = spawn('curl', ['-sS', ...args], { stdio: ['ignore', 'pipe', 'inherit'] })
  let stdout = ''
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()))
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout })))
}

t.test('HTTPS listener with a base path', async (tt) => {
  const pki = makeTestPki()
  const ca = join(await tempDir(tt, 'http-ca'), 'ca.pem')
  await writeFile(ca, pki.caCert)
  const c = await startHttpCluster(tt, {
    projects: [P1],
    basePath: '/hub',
    tls: { cert: pki.serverCert, key: pki.serverKey },
  })
  await c.edge.access.grant(P1, 'alice')
  const alice = c.token('alice')
  const port = c.upstreams.get(P1)!.port
  const site = `https://${c.http}/hub/${P1}/server/${port}`

  const page = await curl(['--cacert', ca, '-H', `Authorization: Bearer ${alice}`, `${site}/x?y=1`])
  tt.equal(page.code, 0, 'TLS verifies against the CA')
  tt.match(JSON.parse(page.stdout), { project: P1, url: '/x?y=1' }, 'prefix and base path stripped')
  const rec = c.upstreams.get(P1)!.requests.at(-1)!
  tt.same(rawValues(rec.rawHeaders, 'x-forwarded-proto'), ['https'])

  const portUrl = c.url(P1, '/keep')
  tt.match(portUrl, /^https:\/\/127\.0\.0\.1:\d+\/hub\//)
  const kept = await curl(['--cacert', ca, '-H', `Authorization: Bearer ${alice}`, portUrl])
  tt.match(
    JSON.parse(kept.stdout),
    { url: `/hub/${P1}/port/${port}/keep` },
    '/port/ keeps the base path',
  )

  const link = await curl(['--cacert', ca, '-i', `${site}/?hopgate_token=${alice}`])
  tt.match(link.stdout, /^HTTP\/1\.1 303/)
  tt.match(link.stdout, new RegExp(`location: /hub/${P1}/server/${port}/\\r\\n`, 'i'))
  tt.match(
    link.stdout,
    new RegExp(
      `set-cookie: hopgate_session=[^;]+; Path=/hub/${P1}/; Max-Age=\\d+; HttpOnly; SameSite=Lax; Secure`,
      'i',
    ),
  )

  const outside = await curl([
    '--cacert',
    ca,
    '-o',
    '/dev/null',
    '-w',
    '%{http_code}',
    '-H',
    `Authorization: Bearer ${alice}`,
    `https://${c.http}/${P1}/server/${port}/x`,
  ])
  tt.equal(outside.stdout, '400', 'a target outside the base path is refused')
  const plain = await curl([
    '-o',
    '/dev/null',
    '-w',
    '%{http_code}',
    `http://${c.http}/hub/${P1}/server/${port}/x`,
  ])
  tt.equal(plain.stdout, '000', 'no plain HTTP on the TLS listener')
})
