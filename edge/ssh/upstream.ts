// Upstream mode: after a user logged in as `<project>@edge`, the edge opens the project's `ssh`
// target through the tunnel, logs in to the project's sshd with its own upstream key, and
// bridges channels: sessions (pty-req, env, shell, exec, subsystem, window-change, signal,
// exit-status, exit-signal, stderr), direct-tcpip to the project's localhost, and (when enabled)
// remote forwarding. It cuts off an upstream that breaks channel limits (zero packet size, a
// window that never opens, floods of channel opens, global or channel requests) or leaves a
// channel open or session request unanswered past a deadline, telling the user why.
// Auth and pre-auth limits are not here.
import type { Duplex } from 'node:stream'
import ssh2 from 'ssh2'
import type { ClientChannel, Connection, ServerChannel, Session, PseudoTtyInfo } from 'ssh2'
import type { Clock } from '../../shared/clock.js'
import { HopgateError, type ErrorCode } from '../../shared/errors.js'
import type { StreamOpener } from '../tunnel/opener.js'
import { UPSTREAM_ALGORITHMS } from './algorithms.js'

export interface UpstreamPolicy {
  /** `ssh -R`: remote port forwarding on the project's sshd. @default false */
  allowRemoteForward: boolean
  /** Certificate extensions, when the user logged in with one (permit-pty, permit-port-forwarding). */
  extensions?: ReadonlySet<string>
}

export interface UpstreamOptions {
  opener: StreamOpener
  project: string
  /** The login name on the project's sshd. */
  user: string
  /** The edge's upstream key, OpenSSH private key text. */
  privateKey: string
  clientAddress: string
  traceId: string
  clock: Clock
  /** Upstream SSH handshake and login, ms. @default 10000 */
  readyTimeoutMs?: number
  signal?: AbortSignal
  /** Cut-offs for a project sshd that breaks the protocol's limits. */
  guards?: UpstreamGuardOptions
}

/** Limits on what a project's sshd may do to the edge; past them the upstream is cut off. */
export interface UpstreamGuardOptions {
  /**
   * A channel whose window stays 0 from its open this long is hostile, ms. Checked every
   * min(250, this/4) ms, so the cut-off lands within 5 s of the open. @default 4000
   */
  stalledWindowMs?: number
  /** Forwarded connections the upstream may open per second (with -R). @default 50 */
  maxForwardedOpensPerSecond?: number
  /**
   * Channel opens the edge never asked for (x11, agent, session, forwarded-tcpip without a
   * forward) plus global requests, per second, before the upstream is cut off. @default 20
   */
  maxUnsolicitedPerSecond?: number
  /**
   * Channel requests (exit-status, keepalive@openssh.com, anything else) per second on all of a
   * connection's channels, before the upstream is cut off. A channel's first exit-status or
   * exit-signal is not counted: it answers a session the user opened, so closing many
   * multiplexed sessions at once is no flood. @default 20
   */
  maxChannelRequestsPerSecond?: number
  /**
   * Time the upstream has to answer what the edge asked of it, ms: a session's channel open
   * and its requests (pty-req, exec, shell, subsystem) together, counted from the open, and
   * each direct-tcpip open or tcpip-forward request. Past it the user's sessions get
   * HOPGATE_ERR_SSH_UPSTREAM_TIMEOUT and the upstream is cut off. @default 30000
   */
  requestReplyTimeoutMs?: number
}

export const UPSTREAM_GUARD_DEFAULTS: Required<UpstreamGuardOptions> = {
  stalledWindowMs: 4000,
  maxForwardedOpensPerSecond: 50,
  maxUnsolicitedPerSecond: 20,
  maxChannelRequestsPerSecond: 20,
  requestReplyTimeoutMs: 30_000,
}

/** What the user's sessions read on stderr when the edge cuts their upstream, by code. */
const CUT_MESSAGES: Partial<Record<ErrorCode, string>> = {
  HOPGATE_ERR_SSH_UPSTREAM_HOSTILE:
    'hopgate: the project sshd broke SSH channel limits and was disconnected ' +
    '(HOPGATE_ERR_SSH_UPSTREAM_HOSTILE)\r\n',
  HOPGATE_ERR_SSH_UPSTREAM_TIMEOUT:
    'hopgate: the project sshd did not answer a channel open or session request in time ' +
    'and was disconnected (HOPGATE_ERR_SSH_UPSTREAM_TIMEOUT)\r\n',
}

/** Smaller max packets are hostile (ssh2 loops forever on 0); RFC 4254 peers use 32 KiB. */
const MIN_PACKET_SIZE = 512
const LOCALHOST = new Set(['localhost', '127.0.0.1', '::1'])

export type UpstreamClient = InstanceType<typeof ssh2.Client>

/** Where a flood detected on a logged-in upstream is reported (set by bridgeConnection). */
const floodHandlers = new WeakMap<UpstreamClient, (detail: string) => void>()

type Handler = (...args: unknown[]) => void
interface Ssh2Internals {
  _protocol: { _handlers: Record<string, Handler> }
  _forwarding: Record<string, unknown>
  _chanMgr?: { get(id: number): unknown }
}

/**
 * Counts the messages a hostile sshd can send without limit and ssh2 handles on its own (channel
 * opens it auto-rejects, global requests, channel requests), by wrapping ssh2's protocol
 * handlers: ssh2 emits no event for most of them. Past a rate, later ones are dropped
 * unanswered and `onFlood` fires once.
 */
function guardUnsolicited(
  client: UpstreamClient,
  clock: Clock,
  limits: { unsolicited: number; channelRequests: number },
  onFlood: (detail: string) => void,
): void {
  const internals = client as unknown as Ssh2Internals
  const handlers = internals._protocol._handlers
  let tripped = false
  const counter = (maxPerSecond: number): ((what: string) => boolean) => {
    let windowStart = clock.now()
    let count = 0
    return (what) => {
      if (tripped) return true
      const now = clock.now()
      if (now - windowStart >= 1000) {
        windowStart = now
        count = 0
      }
      if (++count <= maxPerSecond) return false
      tripped = true
      onFlood(`${what} flood`)
      return true
    }
  }
  const over = counter(limits.unsolicited)
  const overChannel = counter(limits.channelRequests)
  // Channels whose one free exit report arrived (ssh2's channel objects; ids are reused).
  const exited = new WeakSet<object>()
  const open = handlers.CHANNEL_OPEN
  const global = handlers.GLOBAL_REQUEST
  const request = handlers.CHANNEL_REQUEST
  if (open) {
    handlers.CHANNEL_OPEN = (p, info) => {
      const i = info as { type: string; data?: { destIP?: string; destPort?: number } }
      // Forwarded connections for a forward the edge asked for have their own rate limit.
      const asked =
        i.type === 'forwarded-tcpip' &&
        internals._forwarding[`${i.data?.destIP}:${i.data?.destPort}`] !== undefined
      if ((!asked || tripped) && over('channel-open')) return
      open(p, info)
    }
  }
  if (global) {
    handlers.GLOBAL_REQUEST = (...args) => {
      if (over('global-request')) return
      global(...args)
    }
  }
  if (request) {
    handlers.CHANNEL_REQUEST = (p, recipient, type, ...rest) => {
      let ch: unknown
      try {
        ch = internals._chanMgr?.get(recipient as number)
      } catch {
        // An id out of ssh2's range: counted, then ssh2's own handler deals with it.
      }
      const exit = type === 'exit-status' || type === 'exit-signal'
      if (exit && !tripped && typeof ch === 'object' && ch !== null && !exited.has(ch)) {
        exited.add(ch)
      } else if (overChannel('channel-request')) {
        return
      }
      request(p, recipient, type, ...rest)
    }
  }
}

/** Opens the tunnel stream and logs in to the project's sshd. Throws HOPGATE_ERR_SSH_UPSTREAM_FAILED. */
export async function connectUpstream(o: UpstreamOptions): Promise<UpstreamClient> {
  let stream: Duplex
  try {
    stream = (
      await o.opener.open({
        project: o.project,
        service: 'ssh',
        clientAddress: o.clientAddress,
        traceId: o.traceId,
        ...(o.signal ? { signal: o.signal } : {}),
      })
    ).stream
  } catch (err) {
    throw new HopgateError('HOPGATE_ERR_SSH_UPSTREAM_FAILED', 'tunnel', { cause: err })
  }
  const client = new ssh2.Client()
  // ssh2 can emit more than one error (e.g. a lost handshake, then the socket): never unhandled.
  client.on('error', () => {})
  return new Promise<UpstreamClient>((resolve, reject) => {
    const fail = (err: unknown): void => {
      stream.destroy()
      reject(new HopgateError('HOPGATE_ERR_SSH_UPSTREAM_FAILED', 'login', { cause: err }))
    }
    const closedEarly = (): void => fail(new Error('closed before ready'))
    client.once('ready', () => {
      client.off('error', fail)
      client.off('close', closedEarly)
      // Later errors end in 'close', which the bridge handles.
      client.on('error', () => {})
      resolve(client)
    })
    client.once('error', fail)
    client.once('close', closedEarly)
    let ready = false
    client.once('ready', () => (ready = true))
    const onFlood = (detail: string): void => {
      if (!ready) return fail(new HopgateError('HOPGATE_ERR_SSH_UPSTREAM_HOSTILE', detail))
      const report = floodHandlers.get(client)
      if (report) report(detail)
      else client.destroy()
    }
    client.connect({
      sock: stream,
      username: o.user,
      privateKey: o.privateKey,
      readyTimeout: o.readyTimeoutMs ?? 10_000,
      algorithms: UPSTREAM_ALGORITHMS,
      // The tunnel is mutually authenticated and the agent dials only its registered target, so
      // the project's host key adds nothing the edge could check against.
      hostVerifier: () => true,
      keepaliveInterval: 15_000,
      keepaliveCountMax: 4,
    })
    const g = { ...UPSTREAM_GUARD_DEFAULTS, ...o.guards }
    guardUnsolicited(
      client,
      o.clock,
      { unsolicited: g.maxUnsolicitedPerSecond, channelRequests: g.maxChannelRequestsPerSecond },
      onFlood,
    )
    stream.resume()
  })
}

/**
 * Bridges a logged-in user connection to its upstream client. Listeners go on at once (ssh2
 * rejects channel opens nobody listens for); each waits for the upstream login. `onCutOff`
 * hears why an upstream was cut (HOPGATE_ERR_SSH_UPSTREAM_HOSTILE or _TIMEOUT).
 */
export function bridgeConnection(
  down: Connection,
  upstream: Promise<UpstreamClient>,
  policy: UpstreamPolicy,
  o: Pick<UpstreamOptions, 'clock' | 'guards'>,
  onCutOff: (code: ErrorCode, detail: string) => void,
): void {
  const g = { ...UPSTREAM_GUARD_DEFAULTS, ...o.guards }
  let closed = false
  let up: UpstreamClient | undefined
  // Open session channels: told why before a hostile or hung upstream is cut off.
  const sessions = new Set<ServerChannel>()
  // Set while an upstream is being cut: the user's channels close first, see cutOff().
  let cutting = false
  const closeAll = (): void => {
    if (closed || cutting) return
    closed = true
    up?.end()
    down.end()
  }
  const cutOff = (code: ErrorCode, detail: string): void => {
    if (closed || cutting) return
    cutting = true
    onCutOff(code, detail)
    // No polite end for a peer that floods or stalls: its tunnel stream goes at once.
    up?.destroy()
    // The user's connection ends only after its sessions closed (or 1 s): OpenSSH drops
    // stderr it has not printed yet when a disconnect arrives, and the message would be lost.
    const open = [...sessions].filter((ch) => !ch.destroyed && ch.writable)
    let left = open.length
    const finish = (): void => {
      cutting = false
      closeAll()
    }
    if (left === 0) return finish()
    const timer = o.clock.setTimeout(finish, 1000)
    for (const ch of open) {
      ch.once('close', () => {
        if (--left > 0) return
        o.clock.clearTimeout(timer)
        finish()
      })
      ch.stderr.write(
        CUT_MESSAGES[code] ?? `hopgate: the project sshd was disconnected (${code})\r\n`,
      )
      ch.exit(255)
      ch.end()
    }
  }
  const hostile = (detail: string): void => cutOff('HOPGATE_ERR_SSH_UPSTREAM_HOSTILE', detail)
  /**
   * `cb` with the upstream's answer, or the upstream cut off if none came within
   * requestReplyTimeoutMs: keepalives still being answered would otherwise hold the user
   * forever. An answer after the deadline is dropped (the connection is going anyway).
   */
  const replyWithin = <A extends unknown[]>(
    what: string,
    cb: (...args: A) => void,
  ): ((...args: A) => void) => {
    let done = false
    const timer = o.clock.setTimeout(() => {
      if (done) return
      done = true
      cutOff(
        'HOPGATE_ERR_SSH_UPSTREAM_TIMEOUT',
        `no answer to ${what} in ${g.requestReplyTimeoutMs} ms`,
      )
    }, g.requestReplyTimeoutMs)
    return (...args) => {
      if (done) return
      done = true
      o.clock.clearTimeout(timer)
      cb(...args)
    }
  }
  down.once('close', closeAll)
  upstream.then(
    (client) => {
      up = client
      if (closed) return void client.end()
      floodHandlers.set(client, hostile)
      client.once('close', closeAll)
      listenUpstream(client)
    },
    () => closeAll(),
  )

  /** Cuts the connection if the upstream gave a channel limits ssh2 cannot work with. */
  const guard = (ch: ClientChannel): boolean => {
    const out = (ch as unknown as { outgoing: { packetSize: number; window: number } }).outgoing
    if (!(out.packetSize >= MIN_PACKET_SIZE)) {
      hostile(`max packet ${out.packetSize}`)
      return false
    }
    if (out.window === 0) {
      // A window that opens later is fine; one that never opens would hold the user forever.
      const started = o.clock.now()
      const every = Math.min(250, g.stalledWindowMs / 4)
      const poll = (): void => {
        if (closed || out.window > 0) return
        if (o.clock.now() - started >= g.stalledWindowMs) hostile('window never opened')
        else o.clock.setTimeout(poll, every)
      }
      o.clock.setTimeout(poll, every)
    }
    return true
  }

  down.on('session', (accept) => {
    const session = accept()
    bridgeSession(session, upstream, policy, guard, replyWithin, (ch) => {
      sessions.add(ch)
      ch.once('close', () => sessions.delete(ch))
    })
  })

  down.on('tcpip', (accept, reject, info) => {
    if (!LOCALHOST.has(info.destIP) || !permits(policy, 'permit-port-forwarding')) return reject()
    upstream.then(
      (client) =>
        client.forwardOut(
          info.srcIP,
          info.srcPort,
          info.destIP,
          info.destPort,
          replyWithin('direct-tcpip open', (err: Error | undefined, ch: ClientChannel) => {
            if (err || closed) return reject()
            if (!guard(ch)) return reject()
            pipeBoth(accept(), ch)
          }),
        ),
      () => reject(),
    )
  })

  let opensThisSecond = 0
  let secondStart = o.clock.now()
  const listenUpstream = (client: UpstreamClient): void => {
    client.on('tcp connection', (info, accept, reject) => {
      const now = o.clock.now()
      if (now - secondStart >= 1000) {
        secondStart = now
        opensThisSecond = 0
      }
      if (++opensThisSecond > g.maxForwardedOpensPerSecond) {
        reject()
        return hostile('forwarded-tcpip flood')
      }
      down.forwardOut(info.destIP, info.destPort, info.srcIP, info.srcPort, (err, ch) => {
        if (err) return reject()
        const upCh = accept()
        // The upstream's packet size and window arrive with its open: same limits as ours.
        if (!guard(upCh)) return void ch.destroy()
        pipeBoth(ch, upCh)
      })
    })
  }

  down.on('request', (accept, reject, name, info) => {
    const allowed = policy.allowRemoteForward && permits(policy, 'permit-port-forwarding')
    const i = info
    if (name === 'tcpip-forward' && allowed) {
      upstream.then(
        (c) =>
          c.forwardIn(
            i.bindAddr,
            i.bindPort,
            replyWithin('tcpip-forward', (err: Error | null | undefined, port: number) =>
              err ? reject?.() : accept?.(port),
            ),
          ),
        () => reject?.(),
      )
    } else if (name === 'cancel-tcpip-forward' && allowed) {
      upstream.then(
        (c) =>
          c.unforwardIn(
            i.bindAddr,
            i.bindPort,
            replyWithin('cancel-tcpip-forward', (err: Error | null | undefined) =>
              err ? reject?.() : accept?.(),
            ),
          ),
        () => reject?.(),
      )
    } else {
      reject?.()
    }
  })
}

function permits(policy: UpstreamPolicy, ext: string): boolean {
  return !policy.extensions || policy.extensions.has(ext)
}

function pipeBoth(a: Duplex, b: Duplex): void {
  a.on('error', () => b.destroy())
  b.on('error', () => a.destroy())
  a.pipe(b)
  b.pipe(a)
  a.once('close', () => b.destroy())
  b.once('close', () => a.destroy())
}

function bridgeSession(
  session: Session,
  upstream: Promise<UpstreamClient>,
  policy: UpstreamPolicy,
  guard: (ch: ClientChannel) => boolean,
  replyWithin: <A extends unknown[]>(
    what: string,
    cb: (...args: A) => void,
  ) => (...args: A) => void,
  opened: (ch: ServerChannel) => void,
): void {
  let pty: PseudoTtyInfo | undefined
  const env: Record<string, string> = {}
  let upCh: ClientChannel | undefined
  let pendingWindow: PseudoTtyInfo | undefined
  let started = false

  session.on('pty', (accept, reject, info) => {
    if (started || !permits(policy, 'permit-pty')) return reject?.()
    pty = info
    accept?.()
  })
  session.on('env', (accept, reject, info) => {
    // Bounded: sshd applies its own AcceptEnv; the edge only keeps a sane amount.
    if (
      started ||
      Object.keys(env).length >= 64 ||
      info.key.length > 256 ||
      info.val.length > 4096
    ) {
      return reject?.()
    }
    env[info.key] = info.val
    accept?.()
  })
  session.on('window-change', (accept, _reject, info) => {
    if (upCh) upCh.setWindow(info.rows, info.cols, info.height, info.width)
    else pendingWindow = { ...(pty ?? { term: 'xterm', modes: {} }), ...info }
    accept?.()
  })
  session.on('signal', (accept, _reject, info) => {
    upCh?.signal(info.name)
    accept?.()
  })
  session.on('auth-agent', (_accept, reject) => reject?.())
  session.on('x11', (_accept, reject) => reject?.())

  type Accept = () => ServerChannel | undefined
  const start = (
    what: string,
    accept: Accept,
    reject: (() => void) | undefined,
    open: (up: UpstreamClient, cb: (err: Error | undefined, ch: ClientChannel) => void) => void,
  ): void => {
    if (started) return reject?.()
    started = true
    // Accept now: ssh2 refuses a late accept once the client sent EOF (exec with stdin at EOF
    // does so at once), and the EOF would be lost. An upstream failure then ends the channel
    // with a message and exit status 255, as ssh itself reports connection failures.
    const down = accept()
    if (!down) return
    down.on('error', () => {})
    opened(down)
    const failed = (): void => {
      if (down.destroyed || !down.writable) return
      down.stderr.write('hopgate: the project could not be reached\r\n')
      down.exit(255)
      down.end()
    }
    upstream.then((up) => {
      // One deadline for the open and every request of the start: ssh2 calls back once.
      const reply = replyWithin(what, (err: Error | undefined, ch?: ClientChannel) => {
        if (err || !ch || !guard(ch)) return failed()
        if (down.destroyed || !down.writable) return void ch.close()
        upCh = ch
        if (pendingWindow) {
          ch.setWindow(
            pendingWindow.rows,
            pendingWindow.cols,
            pendingWindow.height,
            pendingWindow.width,
          )
        }
        bridgeChannel(down, ch)
      })
      try {
        open(up, reply)
      } catch (err) {
        // ssh2 throws synchronously when the upstream socket is already gone.
        reply(err as Error)
      }
    }, failed)
  }
  const ptyOpt = (): false | Record<string, unknown> =>
    pty
      ? {
          rows: pty.rows,
          cols: pty.cols,
          height: pty.height,
          width: pty.width,
          term: pty.term,
          modes: pty.modes,
        }
      : false

  session.on('shell', (accept, reject) =>
    start('shell', accept, reject, (up, cb) => up.shell(ptyOpt() as never, { env }, cb)),
  )
  session.on('exec', (accept, reject, info) =>
    start('exec', accept, reject, (up, cb) => {
      const p = ptyOpt()
      up.exec(info.command, { env, ...(p ? { pty: p } : {}) }, cb)
    }),
  )
  session.on('subsystem', (accept, reject, info) =>
    start('subsystem', accept, reject, (up, cb) => up.subsys(info.name, cb)),
  )
}

/**
 * Data both ways with backpressure; upstream stderr to downstream stderr; the exit status or
 * signal forwarded after the last byte of output and before the channel closes.
 */
function bridgeChannel(down: ServerChannel, up: ClientChannel): void {
  let exit: [number] | [string, boolean, string] | undefined
  up.on('exit', (code: number | null, signal?: string, core?: boolean, desc?: string) => {
    exit =
      code !== null && code !== undefined ? [code] : [signal ?? 'KILL', core ?? false, desc ?? '']
  })
  down.on('error', () => up.destroy())
  up.on('error', () => down.destroy())
  down.pipe(up)
  up.stderr.pipe(down.stderr, { end: false })
  up.pipe(down, { end: false })
  let finished = false
  const finish = (): void => {
    if (finished) return
    finished = true
    // A zero-length write completes after every earlier chunk went out: the status comes last.
    down.write(Buffer.alloc(0), () => {
      if (exit && exit.length === 1) down.exit(exit[0])
      else if (exit) down.exit(exit[0], exit[1], exit[2])
      down.end()
    })
  }
  up.once('end', () => (up.destroyed ? finish() : up.once('close', finish)))
  up.once('close', () => {
    if (up.readableEnded) finish()
    else up.once('end', finish)
  })
  down.once('close', () => up.close())
}
