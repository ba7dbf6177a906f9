// A hostile project sshd for hostile-upstream.test.ts, run as its own process so its floods
// cost the test process (which hosts the edge) nothing and the edge's event-loop delay is the
// edge's own. An ssh2 Server that lets any key in, accepts shell and exec, and then misbehaves
// by mode. It prints JSON lines on stdout: {"port"} once listening, {"event":"hostile"} when it
// starts misbehaving on a connection, {"event":"closed"} when the edge cut that connection.
//   zero-window   session channels confirmed with initial window 0, never adjusted
//   zero-packet   session channels confirmed with max packet 0
//   flood-opens   after exec, channel opens the edge never asked for, as fast as it can
//   flood-global  after exec, global requests (keepalive@openssh.com, want-reply), likewise
//   flood-chanreq after exec, channel requests on the session channel (exit-status,
//                 keepalive@openssh.com and a custom one with want-reply), likewise
//   silent-open   session channel opens never answered (keepalives still are)
//   silent-exec   session channels confirmed; exec, shell, subsystem and pty-req never answered
import net from 'node:net'
import ssh2 from 'ssh2'
import { channelRequest, peerChannelId, protoOf } from './ssh2-raw.js'

const mode = process.argv[2] ?? 'zero-window'
const hostKey = ssh2.utils.generateKeyPairSync('ed25519').private

const say = (o: object): void => void process.stdout.write(JSON.stringify(o) + '\n')

const server = new ssh2.Server({ hostKeys: [hostKey] }, (conn) => {
  const proto = protoOf(conn)
  let closed = false
  conn.on('error', () => {})
  conn.on('close', () => {
    closed = true
    say({ event: 'closed' })
  })
  if (mode === 'zero-window' || mode === 'zero-packet') {
    const confirm = proto.channelOpenConfirm.bind(proto)
    proto.channelOpenConfirm = (remote, local, window, packet) => {
      say({ event: 'hostile' })
      if (mode === 'zero-window') confirm(remote, local, 0, packet)
      else confirm(remote, local, window, 0)
    }
  }
  const flood = (session: ssh2.ServerChannel): void => {
    say({ event: 'hostile' })
    let chan = 1000
    const sessionId = peerChannelId(session)
    const burst = (): void => {
      if (closed) return
      for (let i = 0; i < 200; i++) {
        if (mode === 'flood-global') proto.ping()
        else if (mode === 'flood-chanreq') {
          if (i % 3 === 0) proto.exitStatus(sessionId, 0)
          else channelRequest(proto, sessionId, i % 3 === 1 ? 'keepalive@openssh.com' : 'x@h', true)
        } else if (i % 2) proto.openssh_authAgent(chan++, 2 ** 21, 32768)
        else {
          proto.forwardedTcpip(chan++, 2 ** 21, 32768, {
            boundAddr: '127.0.0.1',
            boundPort: 1,
            remoteAddr: '127.0.0.1',
            remotePort: 2,
          })
        }
      }
      setImmediate(burst)
    }
    burst()
  }
  conn.on('authentication', (ctx) => ctx.accept())
  conn.on('ready', () => {
    conn.on('session', (accept) => {
      // A listener that never calls accept or reject: ssh2 sends no answer at all.
      if (mode === 'silent-open') return say({ event: 'hostile' })
      const session = accept()
      if (mode === 'silent-exec') {
        for (const req of ['pty', 'exec', 'shell', 'subsystem'] as const) {
          session.on(req, () => say({ event: 'hostile' }))
        }
        return
      }
      session.on('pty', (ok) => ok?.())
      session.on('env', (ok) => ok?.())
      const start = (ok: () => ssh2.ServerChannel | undefined): void => {
        const ch = ok()
        if (!ch) return
        ch.on('error', () => {})
        // Reads nothing: a zero window never opens because nothing is consumed.
        if (mode.startsWith('flood')) flood(ch)
      }
      session.on('exec', (ok) => start(ok))
      session.on('shell', (ok) => start(ok))
    })
  })
})

server.listen(0, '127.0.0.1', () => say({ port: (server.address() as net.AddressInfo).port }))
process.on('SIGTERM', () => process.exit(0))
// The test process gone (even by SIGKILL, teardown never run): stdin ends, and so does this.
process.stdin.on('end', () => process.exit(0)).resume()
