import t from 'tap'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { isHopgateError } from '../../shared/errors.js'
import { EmbeddedAccessStore, ACCESS_FILE } from '../../edge/auth/embedded-access.js'
import { tempDir } from '../helpers/echo.js'

const P = '0b2e3c4d-1111-4222-8333-944455556666'
const FP = 'SHA256:' + 'A'.repeat(43)

t.test('grant, revoke and reopen', async (t) => {
  const dir = await tempDir(t, 'hg-access-')
  const s = await EmbeddedAccessStore.open({ stateDir: dir })
  const changes: string[] = []
  s.onChange((c) => changes.push(c.kind))
  t.equal(await s.isCollaborator(P, 'alice'), false)
  t.equal(await s.grant(P, 'alice'), true)
  t.equal(await s.grant(P, 'alice'), false, 'idempotent')
  t.equal(await s.grant(P, 'bob'), true)
  t.same(await s.collaborators(P), ['alice', 'bob'])
  t.same(await s.projectsOf('bob'), [P])
  t.equal(await s.revoke(P, 'bob'), true)
  t.equal(await s.revoke(P, 'bob'), false)
  t.same(changes, ['acl', 'acl', 'acl'])
  await s.addSshKey({
    account: 'alice',
    fingerprint: FP,
    type: 'ssh-ed25519',
    publicKey: 'AAAA',
    comment: 'x',
  })
  await s.close()
  t.rejects(s.isCollaborator(P, 'alice'), { code: 'HOPGATE_ERR_STORE_CLOSED' })
  const again = await EmbeddedAccessStore.open({ stateDir: dir })
  t.equal(await again.isCollaborator(P, 'alice'), true, 'grant survived reopen')
  t.equal(await again.isCollaborator(P, 'bob'), false, 'revoke survived reopen')
  t.equal((await again.findSshKey(FP))?.account, 'alice')
  await again.close()
})

t.test('bad input is a typed error', async (t) => {
  const dir = await tempDir(t, 'hg-access-')
  const s = await EmbeddedAccessStore.open({ stateDir: dir })
  await t.rejects(s.grant('NOT-A-UUID', 'alice'), { code: 'HOPGATE_ERR_ROUTE_PROJECT_INVALID' })
  await t.rejects(s.grant(P, 'Alice'), { code: 'HOPGATE_ERR_ACCESS_ACCOUNT_INVALID' })
  await t.rejects(s.grant(P, '../x'), { code: 'HOPGATE_ERR_ACCESS_ACCOUNT_INVALID' })
  const key = { fingerprint: FP, type: 'ssh-ed25519', publicKey: 'AAAA', comment: '' }
  await s.addSshKey({ account: 'alice', ...key })
  await t.rejects(s.addSshKey({ account: 'bob', ...key }), { code: 'HOPGATE_ERR_SSH_KEY_TAKEN' })
  await t.rejects(s.addSshKey({ account: 'bob', ...key, fingerprint: 'md5:x' }), {
    code: 'HOPGATE_ERR_SSH_KEY_INVALID',
  })
  t.equal(await s.removeSshKey('bob', FP), false, "bob cannot remove alice's key")
  t.equal(await s.removeSshKey('alice', FP), true)
  t.same(await s.listSshKeys('alice'), [])
  await s.close()
})

t.test('a damaged file is a startup error, never replaced', async (t) => {
  const dir = await tempDir(t, 'hg-access-')
  await writeFile(join(dir, ACCESS_FILE), '{"format":"hopgate.access","version":1,"acl":{"x":[]}}')
  const err = await EmbeddedAccessStore.open({ stateDir: dir }).catch((e: unknown) => e)
  t.ok(isHopgateError(err, 'HOPGATE_ERR_STORE_CORRUPT'))
  t.match(await readFile(join(dir, ACCESS_FILE), 'utf8'), '"x"')
})
