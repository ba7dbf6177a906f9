// The edge's SSH listener (:2222): accepts TCP, applies pre-auth limits before ssh2 sees a byte,
// runs ssh2 with the persistent host key and modern algorithms (strict kex), parses the username
// once, authenticates keys and certificates (auth.ts), then hands the connection to upstream
// mode (upstream.ts) or ProxyJump mode (proxyjump.ts). Refusals are logged with their code and
// counted; no project, account or address is ever a metric label.
import net from 'node:net'
import { once } from 'node:events'
import { randomBytes } from 'node:crypto'
import ssh2 from 'ssh2'
import type { AuthContext, Connection } from 'ssh2'
import { systemClock, type Clock } from '../../shared/clock.js'
import { wallClock } from '../../certs/state.js'
import { isHopgateError, type ErrorCode } from '../../shared/errors.js'
import { noopMetrics, type Metrics } from '../../shared/metrics.js'
import type { AccessStore } from '../auth/access-store.js'
import type { StreamOpener } from '../tunnel/opener.js'
import { SERVER_ALGORITHMS } from './algorithms.js'
import { SshAuthenticator, type Identity } from './auth.js'
import { trustedCaSet } from './cert.js'
import { PreAuthLimiter, type PreAuthLimitOptions, type PreAuthTicket } from './limits.js'
import { serveProxyJump } from './proxyjump.js'
import {
  bridgeConnection,
  connectUpstream,
  type UpstreamClient,
  type UpstreamGuardOptions,
} from './upstream.js'
import { parseSshUsername, type SshUser } from './username.js'

export interface SshIngressOptions {
  /** @default 127.0.0.1 */
  host?: string
  /** @default 2222 */
  port?: number
  /** OpenSSH private key text (edge/ssh/host-key.ts). */
  hostKey: string
  /** The key the edge logs into projects' sshd with. */
  upstreamKey: string
  opener: StreamOpener
  access: AccessStore
  /** Trusted user-CA public keys, authorized_keys lines. @default [] (certificates refused) */
  userCaKeys?: readonly string[]
  /**
   * Login name on the project's sshd; `{project}` becomes the UUID without dashes (CoCalc's
   * per-project Linux user). @default '{project}'
   */
  upstreamUser?: string
  /** Let users `ssh -R` on the project's sshd. @default false */
  allowRemoteForward?: boolean
  limits?: PreAuthLimitOptions
  /** When a project's sshd is cut off as hostile or hung (edge/ssh/upstream.ts). */
  upstreamGuards?: UpstreamGuardOptions
  /** Monotonic clock for limits and watchdogs. @default systemClock */
  clock?: Clock
  /** Wall clock (Unix ms) for certificate validity. @default wallClock */
  wallClock?: Pick<Clock, 'now'>
  metrics?: Metrics
  onEvent?: (event: string, detail: Record<string, unknown>) => void
}

export interface SshIngress {
  address: net.AddressInfo
  limiter: PreAuthLimiter
  /** Open SSH connections, pre-auth ones included: a graceful drain waits for them. */
  readonly connections: number
  /** Takes no new connections (drain: they are refused); open ones go on until close(). */
  stopAccepting(): void
  /** Ends every connection with an SSH disconnect (upstreams first), then the listener. */
  close(): Promise<void>
}

const BAD_USERNAME_TEXT =
  'hopgate: the username names the project: ssh <project-uuid>@host, the UUID without dashes, ' +
  'or project-<uuid>; for ProxyJump use your account name.'

export async function startSshIngress(o: SshIngressOptions): Promise<SshIngress> {
  const clock = o.clock ?? systemClock
  const metrics = o.metrics ?? noopMetrics
  const event = o.onEvent ?? (() => {})
  const refusals = metrics.counter({
    name: 'hopgate_edge_ssh_refused_total',
    help: 'SSH connections or attempts refused, by reason code',
    labelNames: ['code'],
  })
  const logins = metrics.counter({
    name: 'hopgate_edge_ssh_logins_total',
    help: 'SSH logins accepted, by mode and credential',
    labelNames: ['mode', 'via'],
  })
  const pendingGauge = metrics.gauge({
    name: 'hopgate_edge_ssh_unauthenticated_connections',
    help: 'SSH connections accepted but not yet authenticated',
  })
  const refused = (code: ErrorCode, detail: Record<string, unknown> = {}): void => {
    refusals.inc({ code })
    event('ssh-refused', { code, ...detail })
  }
  const limiter = new PreAuthLimiter(clock, o.limits)
  const auth = new SshAuthenticator({
    access: o.access,
    trustedCas: trustedCaSet(o.userCaKeys ?? []),
    wallClock: o.wallClock ?? wallClock,
  })
  const upstreamUser = o.upstreamUser ?? '{project}'
  // ssh2 reports a connection with its peer address; that pair names the socket and its ticket.
  const tickets = new Map<string, PreAuthTicket>()
  const sockets = new Set<net.Socket>()
  // Logged-in upstream clients: ended gracefully on close, so each project sshd sees a
  // disconnect and the agent's target socket closes, before the tunnel goes away.
  const upstreams = new Set<UpstreamClient>()
  // User connections, so close() can say goodbye in SSH (a disconnect) rather than cut TCP.
  const conns = new Set<Connection>()

  const ssh = new ssh2.Server(
    { hostKeys: [o.hostKey], algorithms: SERVER_ALGORITHMS, ident: 'hopgate' },
    (conn, info) => {
      const peer = `${info.ip}:${info.port}`
      const ticket = tickets.get(peer)
      if (!ticket) return void conn.end()
      handle(conn, info.ip, peer, ticket)
    },
  )

  const handle = (conn: Connection, ip: string, peer: string, ticket: PreAuthTicket): void => {
    const traceId = randomBytes(8).toString('hex')
    let user: SshUser | null | undefined
    let identity: Identity | undefined
    conn.on('error', () => {})
    conns.add(conn)
    conn.once('close', () => conns.delete(conn))
    const fail = (ctx: AuthContext, code: ErrorCode, methods: string[]): void => {
      refused(code, { traceId, peer })
      const over = ticket.failedAttempt()
      if (over) {
        refused(over, { traceId, peer })
        ctx.reject([], false)
        conn.end()
        return
      }
      ctx.reject(methods as never)
    }
    conn.on('authentication', (ctx) => {
      if (user === undefined) {
        try {
          user = parseSshUsername(ctx.username)
        } catch {
          user = null
        }
      }
      if (user === null) {
        if (ctx.method === 'keyboard-interactive') {
          // The one way to show text before auth fails: an info request with no prompts.
          refused('HOPGATE_ERR_SSH_BAD_USERNAME', { traceId, peer })
          ctx.prompt([], 'hopgate', BAD_USERNAME_TEXT, () => {
            ctx.reject([], false)
            conn.end()
          })
          return
        }
        if (ctx.method === 'none') return ctx.reject(['keyboard-interactive'])
        return fail(ctx, 'HOPGATE_ERR_SSH_BAD_USERNAME', ['keyboard-interactive'])
      }
      if (ctx.method === 'none') return ctx.reject(['publickey'])
      if (ctx.method !== 'publickey') return fail(ctx, 'HOPGATE_ERR_SSH_AUTH_FAILED', ['publickey'])
      const u = user
      auth
        .check({
          user: u,
          algo: ctx.key.algo,
          keyBlob: ctx.key.data,
          ...(ctx.signature
            ? { signature: ctx.signature, signedData: ctx.blob ?? Buffer.alloc(0) }
            : {}),
          ...(ctx.hashAlgo ? { hashAlgo: ctx.hashAlgo } : {}),
          clientIp: ip,
        })
        .then(
          (id) => {
            if (ctx.signature) identity = id
            ctx.accept()
          },
          (err: unknown) =>
            fail(ctx, isHopgateError(err) ? err.code : 'HOPGATE_ERR_INTERNAL', ['publickey']),
        )
    })
    conn.once('ready', () => {
      ticket.authenticated()
      const id = identity!
      const u = user!
      const clientAddress = peer
      logins.inc({ mode: u.kind === 'project' ? 'upstream' : 'proxyjump', via: id.via })
      event('ssh-login', {
        traceId,
        peer,
        account: id.account,
        fingerprint: id.fingerprint,
        via: id.via,
      })
      if (u.kind === 'account') {
        serveProxyJump(conn, {
          account: id.account,
          access: o.access,
          opener: o.opener,
          clientAddress,
          traceId,
          onRefused: (code, d) => refused(code, { traceId, ...d }),
        })
        return
      }
      const ac = new AbortController()
      conn.once('close', () => ac.abort())
      const upstream = connectUpstream({
        opener: o.opener,
        project: u.project,
        user: upstreamUser.replaceAll('{project}', u.project.replaceAll('-', '')),
        privateKey: o.upstreamKey,
        clientAddress,
        traceId,
        clock,
        signal: ac.signal,
        ...(o.upstreamGuards ? { guards: o.upstreamGuards } : {}),
      })
      upstream.then(
        (client) => {
          upstreams.add(client)
          client.once('close', () => upstreams.delete(client))
        },
        () => {},
      )
      upstream.catch((err: unknown) =>
        refused(isHopgateError(err) ? err.code : 'HOPGATE_ERR_INTERNAL', {
          traceId,
          project: u.project,
          err,
        }),
      )
      bridgeConnection(
        conn,
        upstream,
        {
          allowRemoteForward: o.allowRemoteForward ?? false,
          ...(id.cert ? { extensions: id.cert.extensions } : {}),
        },
        { clock, ...(o.upstreamGuards ? { guards: o.upstreamGuards } : {}) },
        (code, detail) => refused(code, { traceId, project: u.project, detail }),
      )
    })
  }

  const tcp = net.createServer((socket) => {
    const ip = socket.remoteAddress ?? ''
    const peer = `${ip}:${socket.remotePort}`
    let ticket: PreAuthTicket
    try {
      ticket = limiter.admit(ip, (code) => {
        refused(code, { peer })
        socket.destroy()
      })
    } catch (err) {
      refused(isHopgateError(err) ? err.code : 'HOPGATE_ERR_INTERNAL', { peer })
      socket.destroy()
      return
    }
    pendingGauge.set(limiter.pending)
    sockets.add(socket)
    tickets.set(peer, ticket)
    socket.on('error', () => {})
    // Window adjusts and keystrokes are small writes that Nagle would hold back behind an ACK.
    socket.setNoDelay(true)
    socket.once('close', () => {
      ticket.close()
      tickets.delete(peer)
      sockets.delete(socket)
      pendingGauge.set(limiter.pending)
    })
    ssh.injectSocket(socket)
  })
  tcp.listen(o.port ?? 2222, o.host ?? '127.0.0.1')
  await once(tcp, 'listening')
  return {
    address: tcp.address() as net.AddressInfo,
    limiter,
    get connections() {
      return sockets.size
    },
    stopAccepting: () => {
      if (tcp.listening) tcp.close()
    },
    close: async () => {
      const ended = [...upstreams].map(
        (c) => new Promise<void>((resolve) => c.once('close', () => resolve()).end()),
      )
      await Promise.race([Promise.all(ended), new Promise((r) => setTimeout(r, 2000).unref())])
      const closed = new Promise<void>((resolve) => tcp.close(() => resolve()))
      // What the upstreams' ends did not already end (ProxyJump, pre-auth) gets a disconnect
      // too; a client that does not close its side within 500 ms is cut.
      const gone = [...sockets].map((s) => new Promise<void>((r) => s.once('close', () => r())))
      for (const c of conns) {
        try {
          c.end()
        } catch {
          // Already ending: its socket closes by itself.
        }
      }
      await Promise.race([Promise.all(gone), new Promise((r) => setTimeout(r, 500).unref())])
      for (const s of sockets) s.destroy()
      await closed
    },
  }
}
