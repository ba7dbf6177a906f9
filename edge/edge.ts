// One edge process, assembled: PKI and stores from the state directory, the router, the session
// table, the tunnel listener (enrollment and agent sessions), raw TCP ingress, and the watch that
// closes a revoked runner's live sessions within one heartbeat interval. HTTP, SSH and the admin
// API join here in later issues; each is one more ingress over the same opener. With `cluster`,
// the edge also registers in the edge registry, forwards to peers (edge/cluster/) and drains.
import { systemClock } from '../shared/clock.js'
import { loadPki } from '../certs/pki.js'
import { FileTokenStore } from '../certs/tokens.js'
import { RevocationList } from '../certs/revocation.js'
import { EmbeddedStore } from './routing/embedded-store.js'
import { Router } from './routing/router.js'
import { SessionTable } from './tunnel/sessions.js'
import { StreamOpener } from './tunnel/opener.js'
import { DirectDialer } from './tunnel/direct.js'
import { startTunnelListener, type TunnelListener } from './tunnel/listener.js'
import { startTcpIngress, type TcpIngress, type TcpMapping } from './ingress/tcp.js'
import { startAdmin, type AdminServer } from './admin.js'
import type { AccessStore } from './auth/access-store.js'
import { EmbeddedAccessStore } from './auth/embedded-access.js'
import { noopMetrics, type Metrics } from '../shared/metrics.js'
import { isHopgateError } from '../shared/errors.js'
import type { Session } from '../shared/yamux/index.js'
import type { Drain } from '../shared/tunnel/control-schema.js'
import type { RouteStore } from './routing/store.js'
import type { EdgeRegistry } from './cluster/registry.js'
import { ClusterMember } from './cluster/member.js'
import { PeerLinks } from './cluster/peer-link.js'
import { startPeerListener, type PeerListener } from './cluster/peer-listener.js'
import { Forwarder } from './cluster/forwarder.js'
import { startDiscovery, type DiscoveryServer } from './cluster/discovery.js'
import { drainEdge, type DrainConfig, type DrainReport } from './drain.js'

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
  /**
   * A route store shared with other edges (one instance across edges in one process, or a shared
   * backend); the edge does not close it. @default the embedded store in stateDir
   */
  store?: RouteStore
  cluster?: ClusterOptions
  /** Graceful drain timing (edge/drain.ts). */
  drain?: DrainConfig
}

export interface Edge {
  edgeId: string
  tunnel: TunnelListener
  tcp: TcpIngress[]
  sessions: SessionTable
  store: RouteStore
  router: Router
  opener: StreamOpener
  revocation: RevocationList
  /** Collaborators and SSH keys: what HTTP and SSH ingress check. */
  access: AccessStore
  metrics: Metrics
  admin?: Pick<AdminServer, 'address'>
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
  close(): Promise<void>
}

export async function startEdge(opts: EdgeOptions): Promise<Edge> {
  const pki = await loadPki(opts.stateDir)
  const tokens = new FileTokenStore(opts.stateDir)
  const revocation = await RevocationList.open(opts.stateDir)
  const store: RouteStore =
    opts.store ?? (await EmbeddedStore.open({ stateDir: opts.stateDir, clock: systemClock }))
  const access = await EmbeddedAccessStore.open({ stateDir: opts.stateDir })
  const metrics = opts.metrics ?? noopMetrics
  const router = new Router({ store, clock: systemClock })
  const sessions = new SessionTable()
  const heartbeatIntervalMs = opts.heartbeatIntervalMs ?? 5000
  const event = opts.onEvent ?? (() => {})
  const control = {
    edgeId: pki.edgeId,
    store,
    sessions,
    heartbeatIntervalMs,
    ...(opts.leaseTtlMs ? { leaseTtlMs: opts.leaseTtlMs } : {}),
    onError: (err: unknown, runnerId: string) => event('control-error', { runnerId, err }),
    onControl: (session: Session, send: (msg: Omit<Drain, 'seq'>) => void) =>
      controls.set(session, send),
  }
  const controls = new WeakMap<Session, (msg: Omit<Drain, 'seq'>) => void>()
  let forwarder: Forwarder | undefined
  // In-cluster runners: dialed when no reverse session is there (and reverse ones need no dial).
  const direct = new DirectDialer({ pki, store, revocation, control })
  const opener = new StreamOpener({
    router,
    sessions,
    // With peers, a runner without a direct address (or whose dial failed) is forwarded to.
    connect: (runnerId) =>
      direct.connect(runnerId).catch((err: unknown) => {
        if (!(forwarder && isHopgateError(err, 'HOPGATE_ERR_RUNNER_UNAVAILABLE'))) throw err
      }),
    forward: (req) => {
      if (!forwarder) throw new Error('unreachable: forward without a cluster')
      return forwarder.forward(req)
    },
  })
  const tunnel = await startTunnelListener({
    host: opts.tunnelHost ?? '127.0.0.1',
    port: opts.tunnelPort ?? 7443,
    pki,
    tokens,
    revocation,
    control,
    onRefused: (code, detail) => event('tunnel-refused', { code, ...detail }),
    onSession: (runnerId) => event('session', { runnerId }),
  })
  let cluster: Edge['cluster']
  let discoveryServer: DiscoveryServer | undefined
  if (opts.cluster) {
    const c = opts.cluster
    const peer = await startPeerListener({
      host: c.peerHost ?? '127.0.0.1',
      port: c.peerPort ?? 7445,
      pki,
      sessions,
      onEvent: event,
    })
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
    await member.start()
    const links = new PeerLinks({ pki })
    forwarder = new Forwarder({ store, member, links, onEvent: event })
    const discovery =
      c.discoveryPort !== undefined
        ? await startDiscovery({
            host: c.discoveryHost ?? '127.0.0.1',
            port: c.discoveryPort,
            edges: () => member.edges(),
          })
        : undefined
    discoveryServer = discovery
    cluster = { member, forwarder, links, peer, ...(discovery && { discovery }) }
  }
  const tcp: TcpIngress[] = []
  let userConnections = 0
  for (const mapping of opts.tcp ?? []) {
    const ingress = await startTcpIngress(mapping, opener, (err) =>
      event('tcp-refused', { err, project: mapping.project }),
    )
    // Counted for the drain: it waits for these to finish.
    ingress.server.on('connection', (socket) => {
      userConnections++
      socket.once('close', () => userConnections--)
    })
    tcp.push(ingress)
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
  let admin: AdminServer | undefined
  if (opts.adminPort !== undefined) {
    admin = await startAdmin({
      host: opts.adminHost ?? '127.0.0.1',
      port: opts.adminPort,
      store,
      router,
      sessions,
      revocation,
      ready: () => !draining && tunnel.server.listening,
      onRevoke: (runnerId, closed) => event('runner-revoked', { runnerId, sessions: closed }),
    })
  }
  let draining = false
  let closing: Promise<void> | undefined
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      clearInterval(watch)
      await cluster?.member.stop()
      await admin?.close()
      await Promise.all(tcp.map((t) => t.close()))
      cluster?.links.close()
      await cluster?.peer.close()
      await discoveryServer?.close()
      for (const runnerId of sessions.runners())
        for (const e of sessions.sessions(runnerId)) e.session.close()
      await tunnel.close()
      if (!opts.store) await store.close()
      await access.close()
    })())
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
          let n = 0
          for (const runnerId of sessions.runners()) {
            for (const e of sessions.sessions(runnerId)) {
              const send = controls.get(e.session)
              if (!send) continue
              try {
                send({ type: 'drain', reason: 'edge shutting down', alternatives })
                n++
              } catch (err) {
                event('drain-advice-failed', { runnerId, err })
              }
            }
          }
          return n
        },
        stopIngress: () => {
          for (const t of tcp) t.server.close()
        },
        inflight: () => userConnections + (cluster?.peer.inflight ?? 0),
        close,
      },
      opts.drain,
      { onEvent: event },
    ))
  return {
    edgeId: pki.edgeId,
    tunnel,
    tcp,
    sessions,
    store,
    router,
    opener,
    revocation,
    access,
    metrics,
    ...(admin ? { admin: { address: admin.address } } : {}),
    ...(cluster && { cluster }),
    get draining() {
      return draining
    },
    drain,
    close,
  }
}
