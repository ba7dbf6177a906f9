// One edge process, assembled: PKI from the state directory, stores by choice (stores.ts: embedded
// files or Redis), the router, the session
// table, the tunnel listener (enrollment and agent sessions), raw TCP ingress, and the watch that
// closes a revoked runner's live sessions within one heartbeat interval, the admin API and the
// tunnel metrics, HTTP ingress, and with `cluster` the edge registry, peer forwarding and
// discovery (edge/cluster/). A failed start closes whatever it had opened; `drain()` is the
// graceful SIGTERM path (edge/drain.ts). Each ingress is one more user of the same opener.
import { systemClock } from '../shared/clock.js'
import { loadPki } from '../certs/pki.js'
import type { Revocations } from '../certs/revocation.js'
import type { RouteStore } from './routing/store.js'
import { openStores, type EdgeStores, type OpenStoresOptions } from './stores.js'
import { Router } from './routing/router.js'
import { SessionTable, type DrainAdvice } from './tunnel/sessions.js'
import { StreamOpener } from './tunnel/opener.js'
import { DirectDialer } from './tunnel/direct.js'
import { startTunnelListener, type TunnelListener } from './tunnel/listener.js'
import { startTcpIngress, type TcpIngress, type TcpMapping } from './ingress/tcp.js'
import { startAdmin, type AdminServer } from './admin.js'
import type { AccessStore } from './auth/access-store.js'
import { noopMetrics, type Metrics } from '../shared/metrics.js'
import { startSshIngress, type SshIngress, type SshIngressOptions } from './ssh/server.js'
import { loadEdgeKey } from './ssh/host-key.js'
import { signRenewal } from '../certs/renew.js'
import { wallClock } from '../certs/state.js'
import { edgeTunnelMetrics } from './tunnel/metrics.js'
import { UserTokens } from './auth/user-tokens.js'
import { startHttpIngress, type HttpIngress, type HttpLimits } from './http/ingress.js'
import { HopgateError, isHopgateError } from '../shared/errors.js'
import type { EdgeRegistry } from './cluster/registry.js'
import { ClusterMember } from './cluster/member.js'
import { PeerLinks } from './cluster/peer-link.js'
import { startPeerListener, type PeerListener } from './cluster/peer-listener.js'
import { Forwarder } from './cluster/forwarder.js'
import { startDiscovery, type DiscoveryServer } from './cluster/discovery.js'
import { drainEdge, type DrainConfig, type DrainReport } from './drain.js'
import { EDGE_CLUSTER_METRICS } from './cluster/metrics.js'

/** Many edges (edge/cluster/): registry membership, the peer link, forwarding, discovery. */
export interface ClusterOptions {
  registry: EdgeRegistry
  /** Peer link listener (edge-to-edge, mTLS with the edge CA). @default 127.0.0.1:7445 */
  peerHost?: string
  peerPort?: number
  /** host:port agents dial, as registered. @default the tunnel listener's bound address */
  tunnelAdvertise?: string
  /** host:port other edges dial for the peer link. @default the peer listener's bound address */
  peerAdvertise?: string
  /** This edge's registry lease, in ms. @default 15000 */
  leaseTtlMs?: number
  /** Live-edge list and runner edge-list refresh, in ms. @default 1000 */
  refreshIntervalMs?: number
  /** Discovery endpoint for agents (GET /v1/edges); started only when the port is given. */
  discoveryHost?: string
  discoveryPort?: number
}

export interface EdgeOptions {
  stateDir: string
  /**
   * Where routes, runners, ACL, join tokens and revocations live: `embedded` (the state dir, one
   * edge) or `redis://host:port[/db]` (shared by many edges; edge/stores.ts). @default 'embedded'
   */
  store?: string
  /** Redis key prefix; every edge of one cluster uses the same. @default 'hopgate:' */
  storeKeyPrefix?: string
  /** Redis command timeout and route cache tuning (edge/stores.ts has the defaults). */
  storeTuning?: Pick<OpenStoresOptions, 'commandTimeoutMs' | 'cache'>
  /**
   * A route store instance shared with other edges in this process (tests, benches); it replaces
   * the chosen store's routes and the edge does not close it.
   */
  routeStore?: RouteStore
  cluster?: ClusterOptions
  /** Graceful drain timing (edge/drain.ts). */
  drain?: DrainConfig
  /** Tunnel listener address. @default 127.0.0.1:7443 */
  tunnelHost?: string
  tunnelPort?: number
  /** Raw TCP ingress mappings. */
  tcp?: TcpMapping[]
  heartbeatIntervalMs?: number
  leaseTtlMs?: number
  /** Admin HTTP API (edge/admin.ts); started only when adminPort is given (0 picks a port). */
  adminHost?: string
  adminPort?: number
  /** Refusals and failures, for logs and metrics (reason code first). */
  onEvent?: (event: string, detail: Record<string, unknown>) => void
  /** Where counters go; the CLI passes a PromMetrics served at /metrics. @default noopMetrics */
  metrics?: Metrics
  /** Renders `metrics` for `GET /metrics` on the admin API (PromMetrics.render). */
  renderMetrics?: () => Promise<{ contentType: string; body: string }>
  /** HTTP and WebSocket ingress (edge/http/); off unless given. DESIGN default port 8080. */
  http?: {
    host: string
    port: number
    /** Enforced prefix, e.g. `/hub`. @default '' */
    basePath?: string
    /** Serve HTTPS; plain HTTP (behind a TLS load balancer) otherwise. */
    tls?: { cert: string | Buffer; key: string | Buffer }
    limits?: Partial<HttpLimits>
  }
  /** SSH ingress (edge/ssh/, issue 5); started only when given. Keys live in <stateDir>/ssh/. */
  ssh?: EdgeSshOptions
}

/** SSH ingress options; host and port default to 127.0.0.1:2222 (port 0 picks one). */
export type EdgeSshOptions = Omit<
  SshIngressOptions,
  'hostKey' | 'upstreamKey' | 'opener' | 'access' | 'metrics' | 'onEvent'
>

export interface Edge {
  edgeId: string
  tunnel: TunnelListener
  tcp: TcpIngress[]
  sessions: SessionTable
  store: RouteStore
  /** Everything openStores opened (edge/stores.ts), for tooling that needs more than `store`. */
  stores: EdgeStores
  router: Router
  opener: StreamOpener
  revocation: Revocations
  /** Collaborators and SSH keys: what HTTP and SSH ingress check. */
  access: AccessStore
  metrics: Metrics
  admin?: Pick<AdminServer, 'address'>
  /** Sends drain advice to a runner's sessions (or every session); returns how many were told. */
  adviseDrain(advice: DrainAdvice, runnerId?: string): number
  /** Present when started with `http`. */
  http?: HttpIngress
  cluster?: {
    member: ClusterMember
    forwarder: Forwarder
    links: PeerLinks
    peer: PeerListener
    discovery?: Pick<DiscoveryServer, 'address'>
  }
  /** True once a drain started: /readyz answers 503. */
  readonly draining: boolean
  /** Graceful drain (SIGTERM), then close. */
  drain(): Promise<DrainReport>
  ssh?: SshIngress
  close(): Promise<void>
}

export async function startEdge(opts: EdgeOptions): Promise<Edge> {
  const pki = await loadPki(opts.stateDir)
  // What is opened from here on is closed again, newest first, if a later step fails (a port
  // already taken must not leave the tunnel listener or the stores, Redis connections included,
  // open: they would keep the process of a failed start alive).
  const opened: Array<() => Promise<void>> = []
  const closeOpened = async (): Promise<void> => {
    for (let c = opened.pop(); c; c = opened.pop()) await c().catch(() => {})
  }
  const guard = <T>(step: Promise<T>): Promise<T> =>
    step.catch(async (err: unknown) => {
      await closeOpened()
      throw err
    })
  const stores = await openStores({
    stateDir: opts.stateDir,
    edgeId: pki.edgeId,
    clock: systemClock,
    ...(opts.store !== undefined ? { store: opts.store } : {}),
    ...(opts.storeKeyPrefix !== undefined ? { keyPrefix: opts.storeKeyPrefix } : {}),
    ...opts.storeTuning,
  })
  opened.push(() => stores.close())
  const { tokens, revocation, access } = stores
  const store: RouteStore = opts.routeStore ?? stores.routes
  const metrics = opts.metrics ?? noopMetrics
  const router = new Router({ store, clock: systemClock })
  const sessions = new SessionTable()
  const counted = edgeTunnelMetrics(metrics, sessions)
  const heartbeatIntervalMs = opts.heartbeatIntervalMs ?? 5000
  const event = opts.onEvent ?? (() => {})
  const control = {
    edgeId: pki.edgeId,
    store,
    sessions,
    heartbeatIntervalMs,
    ...(opts.leaseTtlMs ? { leaseTtlMs: opts.leaseTtlMs } : {}),
    // The session's runner id comes from its verified cert; the CSR only has to agree.
    renew: (runnerId: string, csrPem: string) =>
      signRenewal({ csrPem, runnerId, runnerCa: pki.runnerCa, revocation, clock: wallClock }),
    onRenew: (runnerId: string, outcome: string) => {
      counted.renewed(outcome)
      event(outcome === 'ok' ? 'cert-renewed' : 'renew-refused', { runnerId, outcome })
    },
    onError: (err: unknown, runnerId: string) => {
      counted.controlError(err)
      event('control-error', { runnerId, err })
    },
  }
  // In-cluster runners: dialed when no reverse session is there (and reverse ones need no dial).
  const direct = new DirectDialer({ pki, store, revocation, control })
  let forwarder: Forwarder | undefined
  const opener = new StreamOpener({
    router,
    sessions,
    // With peers, a runner without a direct address (or whose dial failed) is forwarded to.
    connect: (runnerId) =>
      direct.connect(runnerId).catch((err: unknown) => {
        if (!(forwarder && isHopgateError(err, 'HOPGATE_ERR_RUNNER_UNAVAILABLE'))) throw err
      }),
    forward: (req) => {
      if (!forwarder) {
        throw new HopgateError('HOPGATE_ERR_RUNNER_UNAVAILABLE', `no session to ${req.runner}`)
      }
      return forwarder.forward(req)
    },
  })
  const tunnel = await guard(
    startTunnelListener({
      host: opts.tunnelHost ?? '127.0.0.1',
      port: opts.tunnelPort ?? 7443,
      pki,
      tokens,
      revocation,
      control,
      onRefused: (code, detail) => {
        counted.refused(code)
        event('tunnel-refused', { code, ...detail })
      },
      onSession: (runnerId) => event('session', { runnerId }),
    }),
  )
  opened.push(async () => {
    for (const runnerId of sessions.runners())
      for (const e of sessions.sessions(runnerId)) e.session.close()
    await tunnel.close()
  })
  let cluster: Edge['cluster']
  if (opts.cluster) {
    const c = opts.cluster
    const peer = await guard(
      startPeerListener({
        host: c.peerHost ?? '127.0.0.1',
        port: c.peerPort ?? 7445,
        pki,
        sessions,
        onEvent: event,
        metrics,
      }),
    )
    opened.push(() => peer.close())
    const hostPort = (a: { address: string; port: number }): string =>
      a.address.includes(':') ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`
    const member = new ClusterMember({
      registry: c.registry,
      store,
      sessions,
      self: {
        edgeId: pki.edgeId,
        tunnelAddress: c.tunnelAdvertise ?? hostPort(tunnel.address),
        peerAddress: c.peerAdvertise ?? hostPort(peer.address),
      },
      ...(c.leaseTtlMs !== undefined && { leaseTtlMs: c.leaseTtlMs }),
      ...(c.refreshIntervalMs !== undefined && { refreshIntervalMs: c.refreshIntervalMs }),
      onError: (err, what) => event('cluster-error', { what, err }),
    })
    await guard(member.start())
    opened.push(() => member.stop())
    const links = new PeerLinks({ pki })
    opened.push(async () => links.close())
    forwarder = new Forwarder({ store, member, links, onEvent: event, metrics })
    let discovery: DiscoveryServer | undefined
    if (c.discoveryPort !== undefined) {
      const d = await guard(
        startDiscovery({
          host: c.discoveryHost ?? '127.0.0.1',
          port: c.discoveryPort,
          edges: () => member.edges(),
        }),
      )
      opened.push(() => d.close())
      discovery = d
    }
    cluster = { member, forwarder, links, peer, ...(discovery && { discovery }) }
  }
  const tcp: TcpIngress[] = []
  let userConnections = 0
  for (const mapping of opts.tcp ?? []) {
    const ingress = await guard(
      startTcpIngress(mapping, opener, (err) =>
        event('tcp-refused', { err, project: mapping.project }),
      ),
    )
    // Counted for the drain: it waits for these to finish.
    ingress.server.on('connection', (socket) => {
      userConnections++
      socket.once('close', () => userConnections--)
    })
    tcp.push(ingress)
    opened.push(() => ingress.close())
  }
  // `hopgate runner revoke` writes the list from another process: re-read it every heartbeat.
  const watch = setInterval(() => {
    revocation.reload().then(
      () => {
        for (const runnerId of sessions.runners()) {
          if (revocation.isRevoked(runnerId)) {
            event('runner-revoked', { runnerId, sessions: sessions.revoke(runnerId) })
          }
        }
      },
      (err: unknown) => event('revocation-reload-failed', { err }),
    )
  }, heartbeatIntervalMs)
  watch.unref()
  // A shared store pushes revocations made at any edge: close the sessions now, not next tick.
  const offRevoked = stores.onRevoked((runnerId) => {
    if (sessions.sessions(runnerId).length > 0) {
      event('runner-revoked', { runnerId, sessions: sessions.revoke(runnerId) })
    }
  })
  opened.push(async () => offRevoked())
  opened.push(async () => clearInterval(watch))
  // HTTP ingress (issue 4): its own block so other ingresses can land beside it.
  let http: HttpIngress | undefined
  if (opts.http) {
    const userTokens = await guard(UserTokens.open(opts.stateDir))
    const started = await guard(
      startHttpIngress({
        host: opts.http.host,
        port: opts.http.port,
        ...(opts.http.basePath ? { basePath: opts.http.basePath } : {}),
        ...(opts.http.tls ? { tls: opts.http.tls } : {}),
        ...(opts.http.limits ? { limits: opts.http.limits } : {}),
        opener,
        router,
        tokens: userTokens,
        access,
        metrics,
        onEvent: event,
      }),
    )
    opened.push(() => started.close())
    // HTTP connections count for the drain too (keep-alive ones close at their idle timeout).
    started.server.on('connection', (socket) => {
      userConnections++
      socket.once('close', () => userConnections--)
    })
    http = started
  }
  // SSH ingress (issue 5).
  let ssh: SshIngress | undefined
  if (opts.ssh) {
    const hostKey = (await guard(loadEdgeKey(opts.stateDir, 'host_ed25519'))).privateKey
    const upstreamKey = (await guard(loadEdgeKey(opts.stateDir, 'upstream_ed25519'))).privateKey
    const started = await guard(
      startSshIngress({
        ...opts.ssh,
        hostKey,
        upstreamKey,
        opener,
        access,
        metrics,
        onEvent: event,
      }),
    )
    opened.push(() => started.close())
    ssh = started
  }
  let draining = false
  // Scraped from the start (0), so a dashboard sees the drain begin rather than a new series.
  metrics.gauge(EDGE_CLUSTER_METRICS.draining).set(0)
  let admin: AdminServer | undefined
  if (opts.adminPort !== undefined) {
    admin = await guard(
      startAdmin({
        host: opts.adminHost ?? '127.0.0.1',
        port: opts.adminPort,
        store,
        router,
        sessions,
        revocation,
        access,
        ready: () => !draining && tunnel.server.listening,
        onRevoke: (runnerId, closed) => event('runner-revoked', { runnerId, sessions: closed }),
        ...(opts.renderMetrics ? { metrics: opts.renderMetrics } : {}),
      }),
    )
    const started = admin
    opened.push(() => started.close())
  }
  const adviseDrain = (advice: DrainAdvice, runnerId?: string): number => {
    const n = sessions.drain(advice, runnerId)
    counted.drained(n)
    return n
  }
  let closing: Promise<void> | undefined
  // Everything is closed newest first, the same list a failed start unwinds: ingress and admin
  // before the tunnel (no new user streams), the stores last.
  const close = (): Promise<void> => (closing ??= closeOpened())
  let drained: Promise<DrainReport> | undefined
  const drain = (): Promise<DrainReport> =>
    (drained ??= drainEdge(
      {
        setNotReady: () => {
          draining = true
        },
        stopTunnel: () => {
          tunnel.server.close()
        },
        markDraining: async () => cluster?.member.setDraining(),
        adviseAgents: () => {
          const alternatives = (cluster?.member.peers() ?? [])
            .filter((e) => !e.draining)
            .map((e) => e.tunnelAddress)
            .slice(0, 16)
          return adviseDrain({ reason: 'edge shutting down', alternatives })
        },
        stopIngress: () => {
          for (const t of tcp) t.server.close()
          http?.server.close()
          ssh?.stopAccepting()
        },
        inflight: () => userConnections + (ssh?.connections ?? 0) + (cluster?.peer.inflight ?? 0),
        close,
      },
      opts.drain,
      { onEvent: event, metrics },
    ))
  return {
    edgeId: pki.edgeId,
    tunnel,
    tcp,
    sessions,
    store,
    stores,
    router,
    opener,
    revocation,
    access,
    metrics,
    ...(admin ? { admin: { address: admin.address } } : {}),
    adviseDrain,
    ...(http ? { http } : {}),
    ...(ssh ? { ssh } : {}),
    ...(cluster && { cluster }),
    get draining() {
      return draining
    },
    drain,
    close,
  }
}
