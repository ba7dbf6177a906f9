// Upstream mode file transfer with real OpenSSH tools through the edge: scp upload and sftp
// download of 100 MiB with SHA-256 checks, and rsync -e ssh, against an sshd trusting only the
// edge's upstream key.
import t from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import { writeFile, readFile, mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { tempDir } from '../helpers/echo.js'
import { P, addKey, run, sshOpts, startCluster, startSshd, writeUserKey } from './_helpers.js'
import { loadEdgeKey } from '../../edge/ssh/host-key.js'

t.test('scp, sftp, rsync through the edge', async (tt) => {
  const edgeDir = await tempDir(tt, 'edge')
  const work = await tempDir(tt, 'work')
  const upstreamKey = await loadEdgeKey(edgeDir, 'upstream_ed25519')
  const sshd = await startSshd(tt, [upstreamKey.publicLine])
  const c = await startCluster(tt, { [P]: { sshPort: sshd.port } }, {}, edgeDir)
  await c.edge.access.grant(P, 'alice')
  const alice = await writeUserKey(work, 'alice')
  await addKey(c.edge, 'alice', alice.publicLine)
  const base = [...sshOpts(c, alice.path), '-p', String(c.sshPort)]
  const dest = `${P}@127.0.0.1`

  await tt.test('scp and sftp of 100 MiB, rsync, with SHA-256 checks', async (t2) => {
    const src = join(work, 'big.bin')
    const data = randomBytes(100 * 1024 * 1024)
    await writeFile(src, data)
    const want = createHash('sha256').update(data).digest('hex')
    const remote = join(sshd.dir, 'up.bin')
    const scpUp = await run(
      'scp',
      [...base.map((a) => (a === '-p' ? '-P' : a)), src, `${dest}:${remote}`],
      { timeoutMs: 80_000 },
    )
    t2.equal(scpUp.code, 0, `scp upload ${scpUp.stderr}`)
    t2.equal(
      createHash('sha256')
        .update(await readFile(remote))
        .digest('hex'),
      want,
      'scp upload intact',
    )
    const back = join(work, 'back.bin')
    const batch = join(work, 'batch')
    await writeFile(batch, `get ${remote} ${back}\n`)
    const sftp = await run(
      'sftp',
      [...base.map((a) => (a === '-p' ? '-P' : a)), '-b', batch, dest],
      { timeoutMs: 80_000 },
    )
    t2.equal(sftp.code, 0, `sftp download ${sftp.stderr}`)
    t2.equal(
      createHash('sha256')
        .update(await readFile(back))
        .digest('hex'),
      want,
      'sftp download intact',
    )
    const rdir = join(work, 'rsync-src')
    await mkdir(rdir)
    await writeFile(join(rdir, 'a.txt'), 'alpha\n')
    await writeFile(join(rdir, 'b.bin'), data.subarray(0, 1024 * 1024))
    const rs = await run('rsync', [
      '-a',
      '-e',
      ['ssh', ...base].join(' '),
      `${rdir}/`,
      `${dest}:${join(sshd.dir, 'rsync-dst')}/`,
    ])
    t2.equal(rs.code, 0, `rsync -e ssh ${rs.stderr}`)
    t2.equal(
      await readFile(join(sshd.dir, 'rsync-dst', 'a.txt'), 'utf8'),
      'alpha\n',
      'rsync copied a.txt',
    )
    t2.ok(
      (await readFile(join(sshd.dir, 'rsync-dst', 'b.bin'))).equals(data.subarray(0, 1024 * 1024)),
      'and b.bin',
    )
  })
})
