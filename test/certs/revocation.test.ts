// certs/revocation.ts: revocations persist (0600, atomic), are seen by another instance after
// reload, can be lifted, and an unreadable deny list fails closed.
import t from 'tap'
import { mkdir, readFile, stat, utimes, writeFile } from 'node:fs/promises'
import { RevocationList, normalizeSerial } from '../../certs/revocation.js'
import { tempStateDir, wallManualClock } from './_helpers.js'

t.test('revoke, persist, reload, unrevoke', async (t) => {
  const dir = await tempStateDir(t)
  const clock = wallManualClock(Date.UTC(2030, 0, 1))
  const list = await RevocationList.open(dir, { clock })
  t.same(list.list(), [], 'no file: empty list')
  t.notOk(list.isRevoked('runner-1'))

  t.equal(await list.revoke('runner-1', { reason: 'stolen laptop' }), true)
  t.equal(await list.revoke('runner-1'), false, 'idempotent')
  t.equal(await list.revokeSerial('01:ab:CD'), true)
  t.ok(list.isRevoked('runner-1'))
  t.ok(list.isRevoked('runner-2', '01ABCD'), 'serial match, any runner')
  t.ok(list.isRevoked('runner-2', '01:ab:cd'), 'serial forms are normalised')
  t.notOk(list.isRevoked('runner-2', '01ABCE'))
  t.same(list.list()[0], {
    kind: 'runner',
    value: 'runner-1',
    revokedAt: Date.UTC(2030, 0, 1),
    reason: 'stolen laptop',
  })
  t.equal((await stat(list.path)).mode & 0o777, 0o600)

  const other = await RevocationList.open(dir)
  t.ok(other.isRevoked('runner-1'), 'another process sees it')
  await other.revoke('runner-3')
  t.notOk(list.isRevoked('runner-3'), 'in memory until reload')
  await list.reload()
  t.ok(list.isRevoked('runner-3'))

  t.equal(await list.unrevoke('runner-1'), true)
  t.equal(await list.unrevoke('runner-1'), false)
  await other.reload()
  t.notOk(other.isRevoked('runner-1'))
  t.match(await readFile(list.path, 'utf8'), /"runner-3"/)

  await t.rejects(list.revoke('Not Valid'), { code: 'HOPGATE_ERR_PKI_ID_INVALID' })
  t.throws(() => normalizeSerial('xyz'), TypeError)
})

t.test('concurrent revocations from two instances are all kept', async (t) => {
  const dir = await tempStateDir(t)
  const a = await RevocationList.open(dir)
  const b = await RevocationList.open(dir)
  await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).revoke(`runner-${i}`)))
  await a.reload()
  t.equal(a.list().length, 10, 'no lost update')
})

t.test('a garbled deny list fails closed', async (t) => {
  const dir = await tempStateDir(t)
  const list = await RevocationList.open(dir)
  await list.revoke('runner-1')
  await writeFile(list.path, '{"version":1,"entries":[{"kind":"everyone"}]}')
  await t.rejects(list.reload(), { code: 'HOPGATE_ERR_PKI_STATE_INVALID' })
  t.ok(list.isRevoked('runner-1'), 'the last good list stays in force')
  await t.rejects(RevocationList.open(dir), { code: 'HOPGATE_ERR_PKI_STATE_INVALID' })
  await t.rejects(list.revoke('runner-2'), { code: 'HOPGATE_ERR_PKI_STATE_INVALID' })
})

t.test('a lock left behind by a crashed process is taken over once stale', async (t) => {
  const dir = await tempStateDir(t)
  const list = await RevocationList.open(dir)
  await mkdir(`${dir}/pki`, { mode: 0o700 })
  await writeFile(`${list.path}.lock`, '99999')
  const old = new Date(Date.now() - 60_000)
  await utimes(`${list.path}.lock`, old, old)
  t.equal(await list.revoke('runner-1'), true)
  await t.rejects(stat(`${list.path}.lock`), { code: 'ENOENT' }, 'lock released')
})
