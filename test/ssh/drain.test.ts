// A graceful drain counts SSH sessions (real OpenSSH on both sides): a session open when the
// drain starts finishes its command and the drain waits for it; a new `ssh` after the ingress
// stopped is refused; a session still open at the grace deadline is ended with an SSH disconnect
// (the client exits by itself, nothing hangs) and reported as cut.
import t from 'tap'
import net from 'node:net'
import { spawn } from 'node:child_process'
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
  until,
} from './_helpers.js'
import { loadEdgeKey } from '../../edge/ssh/host-key.js'
import type { TapTest } from '../helpers/yamux-pair.js'
import type { DrainConfig } from '../../edge/drain.js'

async function setup(tt: TapTest, drain: DrainConfig) {
  const edgeDir = await tempDir(tt, 'edge')
  const work = await tempDir(tt, 'work')
  const upstreamKey = await loadEdgeKey(edgeDir, 'upstream_ed25519')
  const sshd = await startSshd(tt, [upstreamKey.publicLine])
  const c = await startCluster(tt, { [P]: { sshPort: sshd.port } }, {}, edgeDir, { drain })
  await c.edge.access.grant(P, 'alice')
  const alice = await writeUserKey(work, 'alice')
  await addKey(c.edge, 'alice', alice.publicLine)
  const base = [...sshOpts(c, alice.path), '-p', String(c.sshPort)]
  return { c, base, dest: `${P}@127.0.0.1` }
}

/** `ssh ... command`, resolved once the command printed `started` (the session is in flight). */
async function startSession(args: string[]) {
  const child = spawn('ssh', args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
  const exit = once(child, 'close').then(([code]) => ({
    code: code as number | null,
    stdout,
    stderr,
  }))
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000)
  void exit.then(() => clearTimeout(timer))
  await until(() => stdout.includes('started'), 'the ssh command started')
  return { child, exit }
}

const refused = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1')
    s.once('connect', () => {
      s.destroy()
      resolve(false)
    })
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'))
  })

t.test('drain waits for an SSH session and refuses new ones', async (tt) => {
  const { c, base, dest } = await setup(tt, { gracePeriodMs: 20_000, lameDuckMs: 100 })
  const session = await startSession([...base, dest, 'echo started; sleep 2; echo done'])
  tt.equal(c.edge.ssh!.connections, 1, 'the SSH ingress counts the open session')
  let sessionOver = false
  void session.exit.then(() => (sessionOver = true))
  const drained = c.edge.drain()
  await until(() => refused(c.sshPort), 'the SSH listener stopped accepting')
  tt.notOk(sessionOver, 'refused while the old session still runs (the edge is draining)')
  const late = await run('ssh', [...base, dest, 'true'], { timeoutMs: 20_000 })
  tt.equal(late.code, 255, 'a new ssh during the drain is refused')
  tt.match(late.stderr, /refused/i, 'connection refused')
  const done = await session.exit
  tt.equal(done.code, 0, 'the in-flight session finished its command')
  tt.equal(done.stdout, 'started\ndone\n', 'with all its output')
  const report = await drained
  tt.ok(report.inflightAtStop >= 1, `the drain counted the SSH session (${report.inflightAtStop})`)
  tt.equal(report.inflightCut, 0, 'and cut nothing: it waited for it')
})

t.test('an SSH session open at the grace deadline is disconnected, not hung', async (tt) => {
  const { c, base, dest } = await setup(tt, { gracePeriodMs: 1500, lameDuckMs: 100 })
  const session = await startSession([...base, dest, 'echo started; sleep 60; echo never'])
  const report = await c.edge.drain()
  tt.equal(report.inflightCut, 1, 'the drain reports the SSH session it cut')
  const done = await session.exit
  tt.equal(done.code, 255, 'the client ends (connection closed by the edge)')
  tt.notMatch(done.stdout, /never/, 'the command did not finish')
  tt.equal(c.edge.ssh!.connections, 0, 'no SSH connection left')
})
