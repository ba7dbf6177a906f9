// One edge process, assembled: PKI and stores from the state directory, the router, the session
// table, the tunnel listener (enrollment and agent sessions), raw TCP ingress, and the watch that
// closes a revoked runner's live sessions within one heartbeat interval. HTTP, SSH and the admin
// API join here in later issues; each is one more ingress over the same opener.
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
import { startSshIngress, type SshIngress, type SshIngressOptions } from './ssh/server.js'
import { loadEdgeKey } from './ssh/host-key.js'

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
  store: EmbeddedStore
  router: Router
  opener: StreamOpener
  revocation: RevocationList
  /** Collaborators and SSH keys: what HTTP and SSH ingress check. */
  access: AccessStore
  metrics: Metrics
  admin?: Pick<AdminServer, 'address'>
  ssh?: SshIngress
  close(): Promise<void>
}

export async function startEdge(opts: EdgeOptions): Promise<Edge> {
  const pki = await loadPki(opts.stateDir)
  const tokens = new FileTokenStore(opts.stateDir)
  const revocation = await RevocationList.open(opts.stateDir)
  const store = await EmbeddedStore.open({ stateDir: opts.stateDir, clock: systemClock })
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
  let ssh: SshIngress | undefined
  if (opts.ssh) {
    ssh = await startSshIngress({
      ...opts.ssh,
      hostKey: (await loadEdgeKey(opts.stateDir, 'host_ed25519')).privateKey,
      upstreamKey: (await loadEdgeKey(opts.stateDir, 'upstream_ed25519')).privateKey,
      opener,
      access,
      metrics,
      onEvent: event,
    })
  }
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
      access,
      onRevoke: (runnerId, closed) => event('runner-revoked', { runnerId, sessions: closed }),
    })
  }
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
    ...(ssh ? { ssh } : {}),
    close: async () => {
      clearInterval(watch)
      await ssh?.close()
      await admin?.close()
      await Promise.all(tcp.map((t) => t.close()))
      for (const runnerId of sessions.runners())
        for (const e of sessions.sessions(runnerId)) e.session.close()
      await tunnel.close()
      await store.close()
      await access.close()
    },
  }
}
