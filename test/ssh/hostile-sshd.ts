// A hostile project sshd for hostile-upstream.test.ts, run as its own process so its floods
// cost the test process (which hosts the edge) nothing and the edge's event-loop delay is the
// edge's own. An ssh2 Server that lets any key in, accepts shell and exec, and then misbehaves
// by mode. It prints JSON lines on stdout: {"port"} once listening, {"event":"hostile"} when it
// starts misbehaving on a connection, {"event":"closed"} when the edge cut that connection.
//   zero-window   session channels confirmed with initial window 0, never adjusted
//   zero-packet   session channels confirmed with max packet 0
//   flood-opens   after exec, channel opens the edge never asked for, as fast as it can
//   flood-global  after exec, global requests (keepalive@openssh.com, want-reply), likewise
import net from 'node:net'
import ssh2 from 'ssh2'

const mode = process.argv[2] ?? 'zero-window'
const hostKey = ssh2.utils.generateKeyPairSync('ed25519').private

interface Proto {
  channelOpenConfirm(remote: number, local: number, window: number, packet: number): void
  forwardedTcpip(chan: number, window: number, packet: number, cfg: object): void
  openssh_authAgent(chan: number, window: number, packet: number): void
  ping(): void
}

const say = (o: object): void => void process.stdout.write(JSON.stringify(o) + '\n')

const server = new ssh2.Server({ hostKeys: [hostKey] }, (conn) => {
  const proto = (conn as unknown as { _protocol: Proto })._protocol
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
  const flood = (): void => {
    say({ event: 'hostile' })
    let chan = 1000
    const burst = (): void => {
      if (closed) return
      for (let i = 0; i < 200; i++) {
        if (mode === 'flood-global') proto.ping()
        else if (i % 2) proto.openssh_authAgent(chan++, 2 ** 21, 32768)
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
      const session = accept()
      session.on('pty', (ok) => ok?.())
      session.on('env', (ok) => ok?.())
      const start = (ok: () => ssh2.ServerChannel | undefined): void => {
        const ch = ok()
        if (!ch) return
        ch.on('error', () => {})
        // Reads nothing: a zero window never opens because nothing is consumed.
        if (mode.startsWith('flood')) flood()
      }
      session.on('exec', (ok) => start(ok))
      session.on('shell', (ok) => start(ok))
    })
  })
})

server.listen(0, '127.0.0.1', () => say({ port: (server.address() as net.AddressInfo).port }))
process.on('SIGTERM', () => process.exit(0))
