// Upstream mode end to end with real OpenSSH on both sides: `ssh <project>@edge` through the
// edge, the tunnel and the agent to an sshd that trusts only the edge's upstream key. Exec with
// exit codes, stderr and signals, env, stdin EOF, an interactive pty in tmux, and ssh -L.
// (scp, sftp and rsync: transfer.test.ts.)
import t from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import { join } from 'node:path'
import net from 'node:net'
import { once } from 'node:events'
import { tempDir } from '../helpers/echo.js'
import {
  P,
  addKey,
  run,
  sshOpts,
  startCluster,
  startSshd,
  writeUserKey,
  freePort,
  until,
} from './_helpers.js'
import { loadEdgeKey } from '../../edge/ssh/host-key.js'

t.test('ssh <project>@edge: exec, pty, -L', async (tt) => {
  const edgeDir = await tempDir(tt, 'edge')
  const work = await tempDir(tt, 'work')
  const upstreamKey = await loadEdgeKey(edgeDir, 'upstream_ed25519')
  const sshd = await startSshd(tt, [upstreamKey.publicLine])
  const echoSockets = new Set<net.Socket>()
  const echo = net.createServer((s) => {
    echoSockets.add(s)
    s.on('error', () => {})
    s.pipe(s)
  })
  echo.listen(0, '127.0.0.1')
  await once(echo, 'listening')
  tt.teardown(() => {
    for (const s of echoSockets) s.destroy()
    echo.close()
  })
  const echoPort = (echo.address() as net.AddressInfo).port
  const c = await startCluster(tt, { [P]: { sshPort: sshd.port } }, {}, edgeDir)
  await c.edge.access.grant(P, 'alice')
  const alice = await writeUserKey(work, 'alice')
  await addKey(c.edge, 'alice', alice.publicLine)
  const base = [...sshOpts(c, alice.path), '-p', String(c.sshPort)]
  const dest = `${P}@127.0.0.1`

  await tt.test('exec: stdout, stderr and exit code pass through', async (t2) => {
    const r = await run('ssh', [...base, dest, 'echo out; echo err >&2; exit 7'])
    t2.equal(r.code, 7, 'exit status 7 arrives')
    t2.equal(r.stdout.toString(), 'out\n', 'stdout')
    t2.match(r.stderr, /^err$/m, 'stderr')
    const nodash = await run('ssh', [...base, `${P.replaceAll('-', '')}@127.0.0.1`, 'true'])
    t2.equal(nodash.code, 0, 'the UUID without dashes works too')
    const prefixed = await run('ssh', [...base, `project-${P}@127.0.0.1`, 'true'])
    t2.equal(prefixed.code, 0, 'and project-<uuid>')
    const sig = await run('ssh', ['-v', ...base, dest, 'kill -TERM $$'])
    t2.equal(sig.code, 255, 'a command killed by a signal: ssh exits 255 (exit-signal passed)')
    t2.match(sig.stderr, /rtype exit-signal/, 'the client received exit-signal')
    const env = await run('ssh', [...base, '-o', 'SetEnv=HOPGATE_X=hello', dest, 'echo $HOPGATE_X'])
    t2.equal(env.stdout.toString(), 'hello\n', 'env requests reach sshd')
    const stdin = randomBytes(3 * 1024 * 1024)
    const cat = await run('ssh', [...base, dest, 'sha256sum'], { input: stdin })
    t2.equal(
      cat.stdout.toString().split(' ')[0],
      createHash('sha256').update(stdin).digest('hex'),
      '3 MiB of stdin arrive intact and EOF ends the command',
    )
  })

  await tt.test('interactive pty session in tmux', async (t2) => {
    const sock = join(work, 'tmux.sock')
    const cmd = ['ssh', ...base, '-tt', dest].map((a) => `'${a}'`).join(' ')
    const tmux = (...a: string[]): Promise<{ code: number | null; stdout: Buffer }> =>
      run('tmux', ['-S', sock, ...a])
    t2.teardown(() => tmux('kill-server'))
    t2.equal(
      (await tmux('new-session', '-d', '-x', '100', '-y', '30', cmd)).code,
      0,
      'tmux runs ssh',
    )
    await until(
      async () => (await tmux('capture-pane', '-p')).stdout.toString().match(/[#$] *$/m) !== null,
      'a prompt',
    )
    await tmux('send-keys', 'echo tty=$(tty) cols=$(tput cols)', 'Enter')
    await until(
      async () =>
        /tty=\/dev\/pts\/\d+ cols=100/.test((await tmux('capture-pane', '-p')).stdout.toString()),
      'pty output',
    )
    t2.pass('the shell has a pty 100 columns wide')
    await tmux('resize-window', '-x', '120', '-y', '30')
    await tmux('send-keys', 'echo now=$(tput cols)', 'Enter')
    await until(
      async () => /now=120/.test((await tmux('capture-pane', '-p')).stdout.toString()),
      'window-change',
    )
    t2.pass('window-change reaches the pty')
    await tmux('send-keys', 'exit', 'Enter')
    await until(async () => (await tmux('has-session')).code !== 0, 'ssh exits with the shell')
    t2.pass('exiting the shell ends the session')
  })

  await tt.test('ssh -L to a port on the project host', async (t2) => {
    const local = await freePort()
    const child = (await import('node:child_process')).spawn(
      'ssh',
      [
        ...base,
        '-N',
        '-o',
        'ExitOnForwardFailure=yes',
        '-L',
        `127.0.0.1:${local}:127.0.0.1:${echoPort}`,
        dest,
      ],
      { stdio: 'ignore' },
    )
    t2.teardown(() => child.kill())
    // Every probe socket is closed at the end, whatever state the forward left it in.
    const clients: net.Socket[] = []
    t2.teardown(() => clients.forEach((c) => c.destroy()))
    const payload = randomBytes(256 * 1024)
    let got = Buffer.alloc(0)
    await until(
      async () => {
        const s = net.connect(local, '127.0.0.1')
        clients.push(s)
        const ok = await new Promise<boolean>((resolve) => {
          const chunks: Buffer[] = []
          s.on('data', (d: Buffer) => chunks.push(d))
          s.once('error', () => resolve(false))
          s.once('connect', () => s.write(payload))
          s.on('data', () => {
            if (Buffer.concat(chunks).length >= payload.length) {
              got = Buffer.concat(chunks)
              s.destroy()
              resolve(true)
            }
          })
          s.once('close', () => resolve(false))
        })
        return ok
      },
      'forward up',
      15_000,
    )
    t2.ok(got.equals(payload), '256 KiB echoed through ssh -L, the edge and the project sshd')
    const far = await run('ssh', [
      ...base,
      '-o',
      'ExitOnForwardFailure=yes',
      '-L',
      `127.0.0.1:${await freePort()}:example.com:80`,
      dest,
      'true',
    ])
    t2.equal(far.code, 0, 'the session itself still works')
    const remote = await run('ssh', [
      ...base,
      '-o',
      'ExitOnForwardFailure=yes',
      '-R',
      `127.0.0.1:${await freePort()}:127.0.0.1:${echoPort}`,
      dest,
      'echo ran',
    ])
    t2.equal(remote.code, 255, 'ssh -R is refused (not enabled), and ExitOnForwardFailure ends ssh')
    t2.match(remote.stderr, /remote port forwarding failed/, 'the client says why')
    t2.equal(remote.stdout.toString(), '', 'and nothing ran')
  })
})
