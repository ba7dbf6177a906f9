// The upstream reply deadline and the channel-request flood guard of edge/ssh/upstream.ts on a
// manual clock, so the 30 s default is tested without waiting 30 s. Real ssh2 peers on
// loopback: a user client, an ssh2 server whose connections bridgeConnection() serves (the
// edge's role), and a project sshd (ssh2) scripted per test. The tunnel is replaced by a direct
// TCP connection to that sshd; hostile-upstream.test.ts runs the same guards through the real
// tunnel with OpenSSH clients.
import t from 'tap'
import net from 'node:net'
import { once } from 'node:events'
import ssh2 from 'ssh2'
import type { ClientChannel, Connection, ServerChannel } from 'ssh2'
import { ManualClock } from '../../shared/clock.js'
import type { ErrorCode } from '../../shared/errors.js'
import type { StreamOpener } from '../../edge/tunnel/opener.js'
import { newUserKey } from '../../edge/ssh/host-key.js'
import {
  bridgeConnection,
  connectUpstream,
  type UpstreamGuardOptions,
} from '../../edge/ssh/upstream.js'
import type { TapTest } from '../helpers/yamux-pair.js'
import { channelRequest, peerChannelId, protoOf } from './ssh2-raw.js'
import { until } from './_helpers.js'

interface Rig {
  clock: ManualClock
  /** Codes the edge cut the upstream for, in order. */
  cuts: ErrorCode[]
  /** Resolves when the project sshd's connection from the edge closed. */
  upstreamClosed: Promise<void>
  /** A user session running `cmd`, once the edge accepted it. */
  exec(cmd: string): Promise<ClientChannel>
}

async function listen(server: net.Server | ssh2.Server): Promise<number> {
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return (server.address() as net.AddressInfo).port
}

/** User -> edge (bridgeConnection on `clock`) -> project sshd, whose connections go to `sshd`. */
async function rig(
  tt: TapTest,
  sshd: (conn: Connection) => void,
  guards: UpstreamGuardOptions = {},
): Promise<Rig> {
  const clock = new ManualClock()
  const cuts: ErrorCode[] = []
  let closedResolve: () => void = () => {}
  const upstreamClosed = new Promise<void>((r) => (closedResolve = r))
  const project = new ssh2.Server({ hostKeys: [newUserKey('sshd').privateKey] }, (conn) => {
    conn.on('error', () => {})
    conn.on('close', () => closedResolve())
    conn.on('authentication', (ctx) => ctx.accept())
    conn.on('ready', () => sshd(conn))
  })
  const projectPort = await listen(project)
  const upstreamKey = newUserKey('upstream').privateKey
  // The tunnel's place: a loopback TCP connection straight to the project sshd.
  const opener = {
    open: async () => ({ stream: net.connect(projectPort, '127.0.0.1') }),
  } as unknown as StreamOpener
  const edge = new ssh2.Server({ hostKeys: [newUserKey('edge').privateKey] }, (conn) => {
    conn.on('error', () => {})
    conn.on('authentication', (ctx) => ctx.accept())
    conn.once('ready', () => {
      const upstream = connectUpstream({
        opener,
        project: 'p',
        user: 'u',
        privateKey: upstreamKey,
        clientAddress: '127.0.0.1:1',
        traceId: 't',
        clock,
        guards,
      })
      upstream.catch(() => {})
      bridgeConnection(conn, upstream, { allowRemoteForward: false }, { clock, guards }, (code) =>
        cuts.push(code),
      )
    })
  })
  const edgePort = await listen(edge)
  const user = new ssh2.Client()
  user.on('error', () => {})
  user.connect({ host: '127.0.0.1', port: edgePort, username: 'alice', password: 'x' })
  await once(user, 'ready')
  tt.teardown(() => {
    user.end()
    edge.close()
    project.close()
  })
  return {
    clock,
    cuts,
    upstreamClosed,
    exec: (cmd) =>
      new Promise((resolve, reject) =>
        user.exec(cmd, (err, ch) => (err ? reject(err) : resolve(ch))),
      ),
  }
}

/** stderr text and the exit code of a user session, once it closed. */
async function outcome(
  ch: ClientChannel,
): Promise<{ stdout: string; stderr: string; code: unknown }> {
  let stdout = ''
  let stderr = ''
  let code: unknown
  ch.on('data', (d: Buffer) => (stdout += d.toString()))
  ch.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
  ch.on('exit', (c: unknown) => (code = c))
  await once(ch, 'close')
  return { stdout, stderr, code }
}

/** Lets pending socket I/O run: what the manual clock does not drive. */
const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 100))

t.test(
  'an exec the project sshd never answers: cut at 30 s (the default), not before',
  async (tt) => {
    let asked = false
    const r = await rig(tt, (conn) =>
      conn.on('session', (accept) => {
        // Listens without answering: ssh2 then sends nothing back.
        accept().on('exec', () => (asked = true))
      }),
    )
    const ch = await r.exec('true')
    const done = outcome(ch)
    await until(() => asked, 'the exec reached the project sshd')
    r.clock.advance(29_999)
    await settle()
    tt.same(r.cuts, [], 'nothing cut at 29.999 s')
    r.clock.advance(1)
    tt.same(r.cuts, ['HOPGATE_ERR_SSH_UPSTREAM_TIMEOUT'], 'cut at 30 s, with the timeout code')
    // Without a cut the session would wait forever: the failure above is the answer.
    if (r.cuts.length === 0) return
    const o = await done
    tt.equal(o.code, 255, 'the user session exits 255')
    tt.match(o.stderr, /HOPGATE_ERR_SSH_UPSTREAM_TIMEOUT/, 'and reads the code on stderr')
    await r.upstreamClosed
    tt.pass('the project sshd connection was closed')
  },
)

t.test('a session channel open never answered: cut at the configured deadline', async (tt) => {
  let asked = false
  const r = await rig(tt, (conn) => conn.on('session', () => (asked = true)), {
    requestReplyTimeoutMs: 5000,
  })
  const done = outcome(await r.exec('true'))
  await until(() => asked, 'the open reached the project sshd')
  r.clock.advance(4999)
  await settle()
  tt.same(r.cuts, [], 'nothing cut before 5 s')
  r.clock.advance(1)
  tt.same(r.cuts, ['HOPGATE_ERR_SSH_UPSTREAM_TIMEOUT'], 'cut at 5 s')
  if (r.cuts.length === 0) return
  tt.equal((await done).code, 255, 'the user session exits 255')
  await r.upstreamClosed
})

t.test('an answer just in time clears the deadline', async (tt) => {
  let answer: (() => void) | undefined
  const r = await rig(tt, (conn) =>
    conn.on('session', (accept) => {
      accept().on('exec', (ok) => {
        answer = () => {
          const ch = ok()
          ch.write('late but fine\n')
          ch.exit(0)
          ch.end()
        }
      })
    }),
  )
  const done = outcome(await r.exec('true'))
  await until(() => answer !== undefined, 'the exec reached the project sshd')
  r.clock.advance(29_000)
  answer!()
  const o = await done
  tt.equal(o.stdout, 'late but fine\n', 'the session ran')
  tt.equal(o.code, 0, 'and exited 0')
  r.clock.advance(60_000)
  await settle()
  tt.same(r.cuts, [], 'no cut after the answer, however long after')
  tt.equal(r.clock.pending, 0, 'no deadline timer left armed')
})

t.test('channel requests: a first exit report is free, 20/s pass, the 21st cuts', async (tt) => {
  let session: ServerChannel | undefined
  let conn: Connection | undefined
  const r = await rig(tt, (c) => {
    conn = c
    c.on('session', (accept) =>
      accept().on('exec', (ok) => {
        session = ok()
        session.on('error', () => {})
      }),
    )
  })
  const ch = await r.exec('sleep')
  const closed = once(ch, 'close')
  let seen = ''
  ch.on('data', (d: Buffer) => (seen += d.toString()))
  ch.stderr.on('data', (d: Buffer) => (seen += d.toString()))
  await until(() => session !== undefined, 'the session started')
  const proto = protoOf(conn!)
  const id = peerChannelId(session!)
  /** Sends `n` requests of `type`, then a mark: the edge handled them all once the mark is in. */
  const send = async (n: number, type: string, mark: string): Promise<void> => {
    for (let i = 0; i < n; i++) {
      if (type === 'exit-status') proto.exitStatus(id, 0)
      else channelRequest(proto, id, type, true)
    }
    session!.write(`${mark}\n`)
    await until(() => seen.includes(mark) || r.cuts.length > 0, `mark ${mark}`)
  }
  await send(1, 'exit-status', 'one')
  await send(20, 'keepalive@openssh.com', 'two')
  tt.same(r.cuts, [], 'a first exit-status and 20 keepalives in one second pass')
  r.clock.advance(1000)
  await send(20, 'x@example.com', 'three')
  tt.same(r.cuts, [], 'a new second, 20 more')
  r.clock.advance(1000)
  await send(21, 'exit-status', 'four')
  await until(() => r.cuts.length > 0, 'the cut')
  tt.same(r.cuts, ['HOPGATE_ERR_SSH_UPSTREAM_HOSTILE'], 'a repeated exit-status counts: 21 cut')
  await r.upstreamClosed
  await closed
  tt.match(seen, /HOPGATE_ERR_SSH_UPSTREAM_HOSTILE/, 'the user session is told why')
})
