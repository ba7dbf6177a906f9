// `hopgate ssh-key add|remove|list` and `hopgate ssh upstream-key` as real processes
// (shared/cli/main.ts) against a real `hopgate edge` process with SSH ingress: the --json
// outputs, fingerprints as OpenSSH's ssh-keygen computes them, a key added by the CLI logging in
// with real OpenSSH (ProxyJump mode: the account alone) and refused once removed, and typed
// errors with non-zero exits for bad input. (The admin endpoints themselves: admin-keys.test.ts.)
import t from 'tap'
import { join } from 'node:path'
import { writeFile } from 'node:fs/promises'
import { initCa } from '../../certs/pki.js'
import { tempDir } from '../helpers/echo.js'
import { run as runCmd, sshOpts, writeUserKey } from './_helpers.js'
import { runHopgate, startHopgate, type CliResult } from '../helpers/cli.js'

const ENV = { HOPGATE_ADMIN: '', HOPGATE_STATE_DIR: '' }
const cli = (args: string[], input = ''): Promise<CliResult> =>
  runHopgate(args, { env: ENV, input })

t.test('hopgate ssh upstream-key', async (tt) => {
  const dir = await tempDir(tt, 'keys')
  const first = await cli(['ssh', 'upstream-key', '--state-dir', dir, '--json'])
  tt.equal(first.code, 0, first.stderr)
  const out = JSON.parse(first.stdout) as { publicKey: string; fingerprint: string }
  tt.same(Object.keys(out), ['publicKey', 'fingerprint'], '--json prints {publicKey, fingerprint}')
  tt.match(out.publicKey, /^ssh-ed25519 AAAA\S+ hopgate-upstream$/)
  await writeFile(join(dir, 'upstream.pub'), out.publicKey + '\n')
  const keygen = await runCmd('ssh-keygen', ['-l', '-f', join(dir, 'upstream.pub')])
  tt.equal(keygen.stdout.toString().split(' ')[1], out.fingerprint, "ssh-keygen's fingerprint")
  const again = await cli(['ssh', 'upstream-key', '--state-dir', dir])
  tt.equal(
    again.stdout,
    out.publicKey + '\n',
    'the same key again (kept in the state dir), as a line',
  )
  const host = await cli(['ssh', 'upstream-key', '--state-dir', dir, '--host-key', '--json'])
  const hostOut = JSON.parse(host.stdout) as { publicKey: string; fingerprint: string }
  tt.not(hostOut.fingerprint, out.fingerprint, '--host-key prints the other key')
  tt.match(hostOut.publicKey, /hopgate-host$/)

  const broken = await tempDir(tt, 'broken')
  await (await import('node:fs/promises')).mkdir(join(broken, 'ssh'), { mode: 0o700 })
  await writeFile(join(broken, 'ssh', 'upstream_ed25519'), 'not a key\n', { mode: 0o600 })
  const bad = await cli(['ssh', 'upstream-key', '--state-dir', broken, '--json'])
  tt.equal(bad.code, 78, 'a corrupt key file is a configuration error (78)')
  tt.match(bad.stderr, /\[HOPGATE_ERR_CONFIG_INVALID\]/, 'with its code')
  tt.equal(bad.stdout, '', 'and nothing on stdout')
})

t.test('hopgate ssh-key add|list|remove against a hopgate edge process', async (tt) => {
  const dir = await tempDir(tt, 'edge')
  const work = await tempDir(tt, 'work')
  await initCa(dir, { edgeId: 'edge-1' })
  const edge = await startHopgate(
    [
      'edge',
      '--json',
      '--state-dir',
      dir,
      '--tunnel-listen',
      '127.0.0.1:0',
      '--admin-listen',
      '127.0.0.1:0',
      '--ssh',
      '127.0.0.1:0',
    ],
    { env: ENV },
  )
  const ready = edge.ready as { admin: string; ssh: string }
  tt.match(ready.ssh, /^127\.0\.0\.1:\d+$/, `the edge has SSH ingress ${edge.stderr()}`)
  const admin = ['--admin', ready.admin]
  const alice = await writeUserKey(work, 'alice')

  // ProxyJump mode: `ssh alice@edge` authenticates the account; -N keeps no session, so a
  // login shows as ssh still running, a refusal as exit 255 with "Permission denied".
  const hostKey = JSON.parse(
    (await cli(['ssh', 'upstream-key', '--state-dir', dir, '--host-key', '--json'])).stdout,
  ) as { publicKey: string }
  const knownHosts = join(work, 'known_hosts')
  await writeFile(knownHosts, `[127.0.0.1]:${ready.ssh.split(':')[1]} ${hostKey.publicKey}\n`)
  const login = (): ReturnType<typeof runCmd> =>
    runCmd(
      'ssh',
      [
        ...sshOpts({ knownHosts }, alice.path),
        '-p',
        ready.ssh.split(':')[1]!,
        '-N',
        '-o',
        'ConnectTimeout=10',
        'alice@127.0.0.1',
      ],
      { timeoutMs: 3000 },
    )
  const before = await login()
  tt.equal(before.code, 255, 'before add: refused')
  tt.match(before.stderr, /Permission denied/)

  const added = await cli(['ssh-key', 'add', 'alice', `${alice.path}.pub`, ...admin, '--json'])
  tt.equal(added.code, 0, added.stderr)
  const rec = (JSON.parse(added.stdout) as { key: Record<string, string> }).key
  tt.same(
    [rec.account, rec.fingerprint, rec.type, rec.comment],
    ['alice', alice.fingerprint, 'ssh-ed25519', 'alice'],
    '--json prints the stored record',
  )
  const fp = await runCmd('ssh-keygen', ['-l', '-f', `${alice.path}.pub`])
  tt.equal(fp.stdout.toString().split(' ')[1], rec.fingerprint, "the fingerprint is ssh-keygen's")
  const during = await login()
  tt.equal(during.code, null, 'after add: the key logs in (ssh -N stays up until killed)')
  tt.notMatch(during.stderr, /Permission denied/)

  const bob = await writeUserKey(work, 'bob')
  const viaStdin = await cli(['ssh-key', 'add', 'bob', '-', ...admin], bob.publicLine + '\n')
  tt.equal(viaStdin.code, 0, viaStdin.stderr)
  tt.equal(viaStdin.stdout, `${bob.fingerprint} ssh-ed25519 bob\n`, '- reads stdin; plain output')
  const list = await cli(['ssh-key', 'list', 'alice', ...admin, '--json'])
  const keys = (JSON.parse(list.stdout) as { keys: { fingerprint: string }[] }).keys
  tt.same(
    keys.map((k) => k.fingerprint),
    [alice.fingerprint],
    '--json lists exactly alice’s key',
  )
  const plain = await cli(['ssh-key', 'list', 'bob', ...admin])
  tt.equal(plain.stdout, `${bob.fingerprint} ssh-ed25519 bob\n`, 'plain list: one line per key')

  // Refusals: typed codes on stderr, non-zero exits, nothing on stdout.
  const refusals: [string, string[], string, number, string?][] = [
    ['a key of another account', ['add', 'bob', `${alice.path}.pub`], 'SSH_KEY_TAKEN', 1],
    ['a private key', ['add', 'alice', alice.path], 'SSH_KEY_INVALID', 2],
    ['an empty key file', ['add', 'alice', '-'], 'SSH_KEY_INVALID', 2, '# only a comment\n'],
    ['a bad account name', ['list', 'Not An Account'], 'ACCESS_ACCOUNT_INVALID', 2],
    ["removing bob's key as alice", ['remove', 'alice', bob.fingerprint], 'ADMIN_NOT_FOUND', 1],
  ]
  for (const [what, args, code, exit, stdin] of refusals) {
    // --json where the subcommand has it: errors never go to stdout either way.
    const json = args[0] === 'remove' ? [] : ['--json']
    const r = await cli(['ssh-key', ...args, ...admin, ...json], stdin)
    tt.equal(r.code, exit, `${what}: exit ${exit}`)
    tt.match(r.stderr, new RegExp(`\\[HOPGATE_ERR_${code}\\]`), `${what}: ${code}`)
    tt.equal(r.stdout, '', `${what}: nothing on stdout`)
  }
  const unreachable = await cli(['ssh-key', 'list', 'alice', '--admin', '127.0.0.1:1'])
  tt.equal(unreachable.code, 1, 'no admin API: exit 1')
  tt.match(unreachable.stderr, /\[HOPGATE_ERR_ADMIN_UNREACHABLE\]/)

  const removed = await cli(['ssh-key', 'remove', 'alice', alice.fingerprint, ...admin])
  tt.equal(removed.code, 0, removed.stderr)
  tt.equal(removed.stdout, `removed ${alice.fingerprint}\n`)
  const after = await login()
  tt.equal(after.code, 255, 'after remove: refused again')
  tt.match(after.stderr, /Permission denied/)
  const empty = await cli(['ssh-key', 'list', 'alice', ...admin, '--json'])
  tt.same(JSON.parse(empty.stdout), { keys: [] }, 'and alice has no keys')

  edge.child.kill('SIGTERM')
  const [exit] = await edge.exit
  tt.equal(exit, 0, 'the edge exits 0 on SIGTERM')
})
