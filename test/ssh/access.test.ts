// Who gets in, with real OpenSSH: the refusal matrix (unknown key, a non-collaborator's key,
// another project's id, a bad username with its message, expired and wrongly signed
// certificates), a certificate login, ProxyJump to the project's sshd with end-to-end auth, and
// 500 stalled pre-auth connections while a real login still succeeds within 3 s.
import t from 'tap'
import net from 'node:net'
import { writeFile, appendFile } from 'node:fs/promises'
import { join } from 'node:path'
import { userInfo } from 'node:os'
import { tempDir } from '../helpers/echo.js'
import {
  P,
  Q,
  addKey,
  run,
  sshOpts,
  startCluster,
  startSshd,
  until,
  writeUserKey,
} from './_helpers.js'
import { loadEdgeKey } from '../../edge/ssh/host-key.js'

t.test('refusals, certificates, ProxyJump, pre-auth flood', async (tt) => {
  const edgeDir = await tempDir(tt, 'edge')
  const work = await tempDir(tt, 'work')
  const upstreamKey = await loadEdgeKey(edgeDir, 'upstream_ed25519')
  const sshd = await startSshd(tt, [upstreamKey.publicLine])
  // A user CA made by ssh-keygen; a second one nobody trusts.
  for (const name of ['ca', 'rogue-ca']) {
    const r = await run('ssh-keygen', [
      '-q',
      '-t',
      'ed25519',
      '-N',
      '',
      '-C',
      name,
      '-f',
      join(work, name),
    ])
    tt.equal(r.code, 0, `ssh-keygen ${name}`)
  }
  const caLine = (await import('node:fs/promises')).readFile(join(work, 'ca.pub'), 'utf8')
  const c = await startCluster(
    tt,
    { [P]: { sshPort: sshd.port }, [Q]: { sshPort: sshd.port } },
    // Every refusal below comes from 127.0.0.1: a penalty box at the default 5 failures would
    // lock the later logins out (limits.test.ts covers the penalty itself).
    { userCaKeys: [await caLine], limits: { loginGraceMs: 60_000, penaltyAfterFailures: 1000 } },
    edgeDir,
  )
  await c.edge.access.grant(P, 'alice')
  await c.edge.access.grant(Q, 'bob')
  const alice = await writeUserKey(work, 'alice')
  const mallory = await writeUserKey(work, 'mallory')
  const stranger = await writeUserKey(work, 'stranger')
  await addKey(c.edge, 'alice', alice.publicLine)
  await addKey(c.edge, 'mallory', mallory.publicLine)
  const port = ['-p', String(c.sshPort)]
  const login = (key: string, user: string, extra: string[] = []) =>
    run('ssh', [...sshOpts(c, key), ...port, ...extra, `${user}@127.0.0.1`, 'echo in'])

  await tt.test('the refusal matrix', async (t2) => {
    const ok = await login(alice.path, P)
    t2.equal(ok.stdout.toString(), 'in\n', 'alice reaches her project')
    for (const [what, key, user] of [
      ['an unknown key', stranger.path, P],
      ['a key of a non-collaborator', mallory.path, P],
      ["another project's id", alice.path, Q],
      ['a bad username', alice.path, 'project-nope'],
      ['an upper-case project id', alice.path, P.toUpperCase()],
    ] as const) {
      const r = await login(key, user)
      t2.equal(r.code, 255, `${what}: refused`)
      t2.match(r.stderr, /Permission denied/, `${what}: permission denied, nothing ran`)
      t2.equal(r.stdout.length, 0)
    }
    const shown = await run('ssh', [
      '-F',
      '/dev/null',
      '-o',
      `UserKnownHostsFile=${c.knownHosts}`,
      '-o',
      'IdentityAgent=none',
      '-o',
      'PreferredAuthentications=keyboard-interactive',
      '-o',
      'NumberOfPasswordPrompts=1',
      ...port,
      'project-nope@127.0.0.1',
      'true',
    ])
    t2.equal(shown.code, 255, 'bad username without BatchMode: refused')
    t2.match(
      shown.stderr,
      /the username names the project/,
      'and told why, before any key is tried',
    )
  })

  await tt.test('OpenSSH user certificates', async (t2) => {
    const sign = async (key: string, ca: string, principals: string, validity: string) => {
      const r = await run('ssh-keygen', [
        '-q',
        '-s',
        join(work, ca),
        '-I',
        `${key}-id`,
        '-n',
        principals,
        '-V',
        validity,
        `${join(work, key)}.pub`,
      ])
      t2.equal(r.code, 0, `ssh-keygen -s ${ca} ${key}`)
    }
    const carol = await writeUserKey(work, 'carol')
    await c.edge.access.grant(P, 'carol')
    await sign('carol', 'ca', 'carol', '-5m:+1h')
    const ok = await login(carol.path, P)
    t2.equal(
      ok.stdout.toString(),
      'in\n',
      'a certificate from the trusted CA, principal carol, logs in (no key registered)',
    )
    const expired = await writeUserKey(work, 'expired')
    await sign('expired', 'ca', 'carol', '20200101:20200102')
    t2.equal((await login(expired.path, P)).code, 255, 'an expired certificate is refused')
    const rogue = await writeUserKey(work, 'rogue')
    await sign('rogue', 'rogue-ca', 'carol', '-5m:+1h')
    t2.equal(
      (await login(rogue.path, P)).code,
      255,
      'a certificate from an untrusted CA is refused',
    )
    const nobody = await writeUserKey(work, 'nobody')
    await sign('nobody', 'ca', 'mallory', '-5m:+1h')
    t2.equal(
      (await login(nobody.path, P)).code,
      255,
      'a certificate naming a non-collaborator is refused',
    )
  })

  await tt.test('ProxyJump: end-to-end to the project sshd', async (t2) => {
    // The project's sshd authenticates the user itself: it trusts alice's key for this test.
    await appendFile(join(sshd.dir, 'authorized_keys'), alice.publicLine + '\n')
    const cfg = join(work, 'jump_config')
    await writeFile(
      cfg,
      [
        'Host hopgate-edge',
        '  HostName 127.0.0.1',
        `  Port ${c.sshPort}`,
        `  UserKnownHostsFile ${c.knownHosts}`,
        '  StrictHostKeyChecking yes',
        'Host *',
        `  IdentityFile ${alice.path}`,
        '  IdentitiesOnly yes',
        '  IdentityAgent none',
        '  BatchMode yes',
        '  LogLevel ERROR',
        '',
      ].join('\n'),
    )
    const jump = (who: string, target: string) =>
      run('ssh', [
        '-F',
        cfg,
        '-J',
        `${who}@hopgate-edge`,
        '-o',
        'UserKnownHostsFile=/dev/null',
        '-o',
        'StrictHostKeyChecking=no',
        `${userInfo().username}@${target}`,
        'echo jumped',
      ])
    const ok = await jump('alice', P)
    t2.equal(
      ok.stdout.toString(),
      'jumped\n',
      `ssh -J alice@edge reaches the project sshd ${ok.stderr}`,
    )
    t2.equal((await jump('alice', Q)).code, 255, 'not to a project alice does not collaborate on')
    t2.equal((await jump('mallory', P)).code, 255, 'not as mallory (her key, not a collaborator)')
    t2.equal((await jump('bob', P)).code, 255, "not as bob with alice's key")
    const port80 = await run('ssh', ['-F', cfg, '-W', `${P}:80`, 'alice@hopgate-edge'])
    t2.not(port80.code, 0, 'direct-tcpip to another port is refused')
  })

  await tt.test('500 stalled pre-auth connections; a real login within 3 s', async (t2) => {
    // The same login without a flood, for scale: this shares two cores with other suites.
    let t0 = Date.now()
    t2.equal((await login(alice.path, P)).stdout.toString(), 'in\n', 'baseline login')
    const baselineMs = Date.now() - t0
    const stalled: net.Socket[] = []
    t2.teardown(() => stalled.forEach((s) => s.destroy()))
    // 50 source addresses (all of 127/8 is loopback), 10 each: what one attacker with a /26 has.
    let settled = 0
    for (let i = 0; i < 500; i++) {
      const s = net.connect({
        port: c.sshPort,
        host: '127.0.0.1',
        localAddress: `127.0.1.${2 + (i % 50)}`,
      })
      s.on('error', () => {})
      // Each stalled client gets the server's ident line, or is closed (refused or evicted).
      let done = false
      const settle = (): void => {
        if (!done) settled++
        done = true
      }
      s.once('data', settle)
      s.once('close', settle)
      stalled.push(s)
    }
    await until(() => settled === 500, 'all 500 connections answered or closed', 30_000)
    t2.ok(
      c.edge.ssh!.limiter.pending >= 100,
      `${c.edge.ssh!.limiter.pending} unauthenticated connections held`,
    )
    t0 = Date.now()
    const r = await login(alice.path, P)
    const ms = Date.now() - t0
    t2.equal(r.stdout.toString(), 'in\n', `the real user got in ${r.stderr}`)
    // 3 s as the issue says, stretched only if this machine is so loaded that the unflooded
    // login alone took over 1 s; a stall (grace expiry, refusal) would still fail it.
    const bound = Math.max(3000, 3 * baselineMs)
    t2.ok(
      ms < bound,
      `login and command took ${ms} ms under the flood (baseline ${baselineMs} ms, bound ${bound} ms)`,
    )
    t2.ok(c.edge.ssh!.limiter.pending >= 99, 'the flood is still held, not drained')
  })
})
