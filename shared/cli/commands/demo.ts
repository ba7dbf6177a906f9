// `hopgate demo`: the tunnel on loopback, before the edge and agent exist. One mutual TLS 1.3
// connection carries a yamux session (client role on the "edge-like" side, server role on the
// "agent-like" side); every TCP connection accepted on --port becomes one yamux stream, and the
// server side pipes it to a local echo target. When the edge and agent land, this command starts
// them instead and keeps its output contract (the `--json` ready line).
import net from 'node:net'
import tls from 'node:tls'
import { once } from 'node:events'
import { pipeline, type Duplex } from 'node:stream'
import { InvalidArgumentError, Option, type Command } from 'commander'
import { makeTestPki } from '../../../certs/testing.js'
import { isHopgateError } from '../../errors.js'
import { createLogger, type Logger } from '../../log.js'
import { Session, type YamuxStream } from '../../yamux/index.js'

export const DEFAULT_DEMO_PORT = 7000
const HOST = '127.0.0.1'
/** How long stop() waits for sockets to close by themselves before destroying them. */
const STOP_GRACE_MS = 2000

export interface DemoOptions {
  /** TCP port users connect to; 0 picks a free one. */
  port: number
  log: Logger
}

export interface Demo {
  /** host:port users connect to. */
  readonly tcp: string
  /** host:port of the mTLS tunnel listener. */
  readonly tunnel: string
  /** host:port of the echo target behind the tunnel. */
  readonly target: string
  /** Settles with the reason when the tunnel session ends on its own (not by stop()). */
  readonly lost: Promise<Error>
  /** Closes listeners, sessions and every socket; idempotent. */
  stop(): Promise<void>
}

/** Peers hanging up is normal life for a proxy: logged at debug, never more. */
function isHangup(err: unknown): boolean {
  if (isHopgateError(err)) {
    return (
      err.code === 'HOPGATE_ERR_YAMUX_STREAM_RESET' ||
      err.code === 'HOPGATE_ERR_YAMUX_SESSION_SHUTDOWN'
    )
  }
  const code = (err as { code?: unknown } | null)?.code
  return (
    code === 'ECONNRESET' ||
    code === 'EPIPE' ||
    code === 'ECONNABORTED' ||
    code === 'ERR_STREAM_PREMATURE_CLOSE' ||
    code === 'ERR_STREAM_DESTROYED'
  )
}

function hostPort(server: net.Server): string {
  const addr = server.address() as net.AddressInfo
  return `${addr.address}:${addr.port}`
}

async function listen(server: net.Server, port: number, what: string): Promise<void> {
  server.listen(port, HOST)
  try {
    await once(server, 'listening')
  } catch (err) {
    const code = (err as { code?: unknown }).code
    const hint = code === 'EADDRINUSE' ? ' (in use: pick another with --port, or --port 0)' : ''
    throw new Error(`cannot listen on ${HOST}:${port} for the ${what}${hint}`, { cause: err })
  }
}

export async function startDemo(opts: DemoOptions): Promise<Demo> {
  const { log } = opts
  const pki = makeTestPki()
  const sockets = new Set<Duplex>()
  const servers: net.Server[] = []
  const sessions: Session[] = []
  let stopping = false
  let nextConn = 1

  const track = (s: Duplex, what: string, fields: Record<string, unknown> = {}): void => {
    sockets.add(s)
    s.once('close', () => sockets.delete(s))
    // pipeline() handles errors while it runs; this catches any that come before or after it.
    s.on('error', (err) => {
      if (isHangup(err)) log.debug({ ...fields, err }, `${what} hung up`)
      else log.warn({ ...fields, err }, `${what} failed`)
    })
  }

  const piped = (what: string, fields: Record<string, unknown>) => (err: Error | null) => {
    if (!err) log.debug(fields, `${what} done`)
    else if (isHangup(err) || stopping) log.debug({ ...fields, err }, `${what} ended early`)
    else log.warn({ ...fields, err }, `${what} failed`)
  }

  let resolveLost!: (err: Error) => void
  const lost = new Promise<Error>((resolve) => (resolveLost = resolve))

  const watchSession = (session: Session, side: string): void => {
    sessions.push(session)
    session.on('error', (err) => log.error({ side, err }, 'tunnel session protocol error'))
    session.on('close', (err) => {
      if (stopping) return
      log.error({ side, err }, 'tunnel session closed')
      resolveLost(err ?? new Error(`the tunnel's ${side} session closed`))
    })
  }

  try {
    // 1. The echo target: what a project's service will be later.
    const echo = net.createServer({ allowHalfOpen: true }, (sock) => {
      track(sock, 'echo connection')
      pipeline(sock, sock, piped('echo', {}))
    })
    servers.push(echo)
    await listen(echo, 0, 'echo target')
    const echoAddr = echo.address() as net.AddressInfo

    // 2. The tunnel listener (agent-like side): mutual TLS 1.3, one session, server role.
    const tunnelServer = tls.createServer({
      key: pki.serverKey,
      cert: pki.serverCert,
      ca: pki.caCert,
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.3',
    })
    servers.push(tunnelServer)
    tunnelServer.on('tlsClientError', (err) => log.warn({ err }, 'tunnel TLS handshake failed'))
    const onTunnelStream = (stream: YamuxStream): void => {
      const fields = { stream: stream.id }
      track(stream, 'tunnel stream (target side)', fields)
      const target = net.connect({ host: HOST, port: echoAddr.port, allowHalfOpen: true })
      target.setNoDelay(true)
      track(target, 'target connection', fields)
      pipeline(stream, target, stream, piped('target pipe', fields))
    }
    let accepted = false
    const serverSessionReady = new Promise<void>((resolve) => {
      tunnelServer.on('secureConnection', (sock: tls.TLSSocket) => {
        if (accepted || stopping) {
          // The demo has exactly one tunnel; the real agent connector manages many.
          sock.destroy()
          return
        }
        accepted = true
        sock.setNoDelay(true)
        sockets.add(sock)
        sock.once('close', () => sockets.delete(sock))
        const peer = sock.getPeerX509Certificate()
        log.info({ peer: peer?.subjectAltName }, 'tunnel accepted (mutual TLS 1.3)')
        const session = new Session(sock, { role: 'server' })
        watchSession(session, 'server')
        session.on('stream', onTunnelStream)
        resolve()
      })
    })
    await listen(tunnelServer, 0, 'tunnel')

    // 3. The dialing side (edge-like): one TLS connection, client role.
    const tunnelAddr = tunnelServer.address() as net.AddressInfo
    const tunnelSock = tls.connect({
      host: HOST,
      port: tunnelAddr.port,
      key: pki.clientKey,
      cert: pki.clientCert,
      ca: pki.caCert,
      minVersion: 'TLSv1.3',
    })
    sockets.add(tunnelSock)
    tunnelSock.once('close', () => sockets.delete(tunnelSock))
    await once(tunnelSock, 'secureConnect')
    tunnelSock.setNoDelay(true)
    const client = new Session(tunnelSock, { role: 'client' })
    watchSession(client, 'client')
    await serverSessionReady

    // 4. The user-facing listener: one yamux stream per accepted connection.
    const front = net.createServer({ allowHalfOpen: true }, (sock) => {
      const fields = { conn: nextConn++, remote: `${sock.remoteAddress}:${sock.remotePort}` }
      track(sock, 'user connection', fields)
      sock.setNoDelay(true)
      let stream: YamuxStream
      try {
        stream = client.openStream()
      } catch (err) {
        log.warn({ ...fields, err }, 'cannot open a tunnel stream; dropping the connection')
        sock.destroy()
        return
      }
      log.debug({ ...fields, stream: stream.id }, 'user connection tunnelled')
      track(stream, 'tunnel stream (user side)', fields)
      pipeline(sock, stream, sock, piped('user pipe', { ...fields, stream: stream.id }))
    })
    servers.push(front)
    await listen(front, opts.port, 'TCP listener')

    return {
      tcp: hostPort(front),
      tunnel: hostPort(tunnelServer),
      target: hostPort(echo),
      lost,
      stop,
    }
  } catch (err) {
    await stop()
    throw err
  }

  async function stop(): Promise<void> {
    if (stopping) return
    stopping = true
    const closed = servers.map(
      (s) => new Promise<void>((resolve) => (s.listening ? s.close(() => resolve()) : resolve())),
    )
    for (const session of sessions) session.close()
    // User, stream and target sockets go at once; the TLS links get a moment to flush GoAway.
    for (const s of sockets) if (!(s instanceof tls.TLSSocket)) s.destroy()
    const grace = new Promise<void>((resolve) => setTimeout(resolve, STOP_GRACE_MS).unref())
    await Promise.race([Promise.all(closed), grace])
    for (const s of sockets) s.destroy()
    await Promise.all(closed)
  }
}

function parsePort(value: string): number {
  if (!/^\d{1,5}$/.test(value) || Number(value) > 65535) {
    throw new InvalidArgumentError('must be an integer from 0 to 65535 (0 picks a free port)')
  }
  return Number(value)
}

/** Resolves on the first SIGINT/SIGTERM; a second one exits at once. */
function firstSignal(log: Logger): { signal: Promise<NodeJS.Signals>; dispose(): void } {
  let resolve!: (s: NodeJS.Signals) => void
  const signal = new Promise<NodeJS.Signals>((r) => (resolve = r))
  let seen = false
  const handler = (sig: NodeJS.Signals): void => {
    if (seen) {
      log.warn({ signal: sig }, 'second signal: exiting without cleanup')
      process.exit(1)
    }
    seen = true
    resolve(sig)
  }
  process.on('SIGINT', handler)
  process.on('SIGTERM', handler)
  return {
    signal,
    dispose: () => {
      process.off('SIGINT', handler)
      process.off('SIGTERM', handler)
    },
  }
}

function humanBanner(demo: Demo): string {
  const [, port] = demo.tcp.split(':')
  return [
    'hopgate demo: a yamux tunnel over one mutual TLS 1.3 connection, on loopback.',
    `  tcp listener  ${demo.tcp}   each connection = one yamux stream through the tunnel`,
    `  tunnel (mTLS) ${demo.tunnel}`,
    `  echo target   ${demo.target}   what the far side of the tunnel dials`,
    '',
    'The edge, the agent and real projects (HTTP, WebSocket, SSH) are not built yet;',
    'this shows the tunnel underneath them.',
    '',
    'Try:',
    `  nc 127.0.0.1 ${port}          (type a line: it comes back through the tunnel)`,
    `  node -e "const s=require('net').connect(${port},'127.0.0.1',()=>s.end('hello\\n'));s.pipe(process.stdout)"`,
    '  npm run bench:yamux        (throughput and latency of the tunnel vs raw TLS and TCP)',
    '',
    'Ctrl-C stops it.',
    '',
  ].join('\n')
}

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('run the tunnel on loopback: TCP listener -> yamux over mTLS -> echo target')
    .option('--json', 'print one JSON line on stdout when ready instead of the banner')
    .addOption(
      new Option('--port <n>', 'TCP port to listen on (0 picks a free port)')
        .env('HOPGATE_DEMO_PORT')
        .argParser(parsePort)
        .default(DEFAULT_DEMO_PORT),
    )
    .action(async (opts: { json?: boolean; port: number }) => {
      const log = createLogger({ bindings: { cmd: 'demo' } })
      const signals = firstSignal(log)
      try {
        const demo = await startDemo({ port: opts.port, log })
        log.info({ tcp: demo.tcp, tunnel: demo.tunnel, target: demo.target }, 'demo ready')
        if (opts.json) {
          const ready = { event: 'ready', tcp: demo.tcp, tunnel: demo.tunnel }
          process.stdout.write(JSON.stringify(ready) + '\n')
        } else {
          process.stdout.write(humanBanner(demo))
        }
        const outcome = await Promise.race([
          signals.signal.then((sig) => ({ sig })),
          demo.lost.then((err) => ({ err })),
        ])
        if ('sig' in outcome) log.info({ signal: outcome.sig }, 'stopping')
        await demo.stop()
        if ('err' in outcome)
          throw new Error('the tunnel closed unexpectedly', { cause: outcome.err })
        log.info('stopped')
      } finally {
        signals.dispose()
      }
    })
}
