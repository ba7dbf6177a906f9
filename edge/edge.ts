// One edge process, assembled: PKI from the state directory, stores by choice (stores.ts: embedded
// files or Redis), the router, the session
// table, the tunnel listener (enrollment and agent sessions), raw TCP ingress, and the watch that
// closes a revoked runner's live sessions within one heartbeat interval. HTTP, SSH and the admin
// API join here in later issues; each is one more ingress over the same opener.
import { systemClock } from '../shared/clock.js'
import { loadPki } from '../certs/pki.js'
import type { Revocations } from '../certs/revocation.js'
import type { RouteStore } from './routing/store.js'
import { openStores, type EdgeStores, type OpenStoresOptions } from './stores.js'
import { Router } from './routing/router.js'
import { SessionTable } from './tunnel/sessions.js'
import { StreamOpener } from './tunnel/opener.js'
import { DirectDialer } from './tunnel/direct.js'
import { startTunnelListener, type TunnelListener } from './tunnel/listener.js'
import { startTcpIngress, type TcpIngress, type TcpMapping } from './ingress/tcp.js'
import { startAdmin, type AdminServer } from './admin.js'
import type { AccessStore } from './auth/access-store.js'
import { noopMetrics, type Metrics } from '../shared/metrics.js'

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
}

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
  close(): Promise<void>
}

export async function startEdge(opts: EdgeOptions): Promise<Edge> {
  const pki = await loadPki(opts.stateDir)
  const stores = await openStores({
    stateDir: opts.stateDir,
    edgeId: pki.edgeId,
    clock: systemClock,
    ...(opts.store !== undefined ? { store: opts.store } : {}),
    ...(opts.storeKeyPrefix !== undefined ? { keyPrefix: opts.storeKeyPrefix } : {}),
    ...opts.storeTuning,
  })
  try {
    return await assemble(opts, pki, stores)
  } catch (err) {
    // Redis connections would keep the process of a failed start alive.
    await stores.close().catch(() => undefined)
    throw err
  }
}

async function assemble(
  opts: EdgeOptions,
  pki: Awaited<ReturnType<typeof loadPki>>,
  stores: EdgeStores,
): Promise<Edge> {
  const { routes: store, tokens, revocation, access } = stores
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
  }
  // In-cluster runners: dialed when no reverse session is there (and reverse ones need no dial).
  const direct = new DirectDialer({ pki, store, revocation, control })
  const opener = new StreamOpener({
    router,
    sessions,
    connect: (runnerId) => direct.connect(runnerId),
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
  const tcp: TcpIngress[] = []
  for (const mapping of opts.tcp ?? []) {
    tcp.push(
      await startTcpIngress(mapping, opener, (err) =>
        event('tcp-refused', { err, project: mapping.project }),
      ),
    )
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
  let admin: AdminServer | undefined
  if (opts.adminPort !== undefined) {
    admin = await startAdmin({
      host: opts.adminHost ?? '127.0.0.1',
      port: opts.adminPort,
      store,
      router,
      sessions,
      revocation,
      ready: () => tunnel.server.listening,
      onRevoke: (runnerId, closed) => event('runner-revoked', { runnerId, sessions: closed }),
    })
  }
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
    close: async () => {
      clearInterval(watch)
      offRevoked()
      await admin?.close()
      await Promise.all(tcp.map((t) => t.close()))
      for (const runnerId of sessions.runners())
        for (const e of sessions.sessions(runnerId)) e.session.close()
      await tunnel.close()
      await stores.close()
    },
  }
}
