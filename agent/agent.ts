// One agent process, assembled: the runner identity from enrollment, the target registry, the
// epoch table, the reverse connector keeping `slots` sessions to the edges (replacing a session
// before letting it go on drain advice), the direct listener, certificate renewal over whichever
// control stream is up, the local admin socket and the optional health/metrics listener. The
// registry starts from the configured projects with the saved runtime changes applied over them
// (project-state.ts).
// Storage and project moves join in later issues.
import { X509Certificate as X509 } from 'node:crypto'
import { loadRunnerIdentity, type RunnerIdentity } from '../certs/enroll.js'
import { wallClock } from '../certs/state.js'
import type { BackoffOptions } from '../shared/backoff.js'
import type { Clock } from '../shared/clock.js'
import { HopgateError } from '../shared/errors.js'
import { noopMetrics, type Metrics } from '../shared/metrics.js'
import type { Drain } from '../shared/tunnel/control-schema.js'
import type { Session } from '../shared/yamux/index.js'
import { adminSocketPath, startAdminSocket, type AdminSocket } from './admin-socket.js'
import { ReverseConnector } from './connector.js'
import { agentHandshake, type AgentControl, type AgentReport } from './control.js'
import { tunnelDialer } from './dial.js'
import { startDirectListener, type DirectListener } from './direct.js'
import { startHealthServer, type HealthServer } from './health.js'
import { agentMetrics } from './metrics.js'
import { projectAdmin } from './projects.js'
import { ProjectState } from './project-state.js'
import { TargetRegistry, type ProjectTargetsInput } from './registry.js'
import { CertRenewer } from './renewer.js'
import { EpochTable } from './streams.js'

export interface AgentOptions {
  stateDir: string
  edges: string[]
  slots?: number
  /** Listen for the edge's direct dial here (in-cluster runners), e.g. `{ host: '0.0.0.0', port: 7444 }`. */
  listen?: { host: string; port: number }
  /** The address edges should dial, as registered in the store; defaults to the listen address. */
  advertise?: string
  /** The YAML config's projects; runtime changes saved in the state dir are applied over them. */
  projects?: Record<string, ProjectTargetsInput>
  /**
   * Save `hopgate agent project add|remove` in <stateDir>/agent/projects.json and apply it at
   * the next start; `false` keeps runtime changes in memory only. @default true
   */
  persistProjects?: boolean
  report: () => AgentReport
  onEvent?: (event: string, detail: Record<string, unknown>) => void
  /** Wall clock (epoch ms) the renewal schedule runs on. @default wallClock */
  clock?: Clock
  /** Certificate renewal at 2/3 of the cert's life; `false` turns it off. @default on */
  renew?: false | { backoff?: BackoffOptions }
  /** The local admin socket; `false` turns it off. @default <stateDir>/agent/admin.sock */
  adminSocket?: string | false
  /** Health and metrics HTTP listener (`/healthz`, `/readyz`, `/metrics`). @default off */
  health?: { host: string; port: number }
  /** Where counters go; the CLI passes a PromMetrics. @default noopMetrics */
  metrics?: Metrics
  /** Renders `metrics` for `/metrics` on the health listener. */
  renderMetrics?: () => Promise<{ contentType: string; body: string }>
  /** A session replaced on drain advice gets this long for its streams, in ms. @default 30000 */
  retireGraceMs?: number
}

export interface Agent {
  runnerId: string
  /** The identity new sessions use; renewal replaces its key and cert in place. */
  identity: RunnerIdentity
  registry: TargetRegistry
  epochs: EpochTable
  connector: ReverseConnector | undefined
  direct: DirectListener | undefined
  renewer: CertRenewer | undefined
  adminSocket: AdminSocket | undefined
  health: HealthServer | undefined
  /** Control handles of the sessions up now. */
  controls(): AgentControl[]
  close(): Promise<void>
}

export async function startAgent(opts: AgentOptions): Promise<Agent> {
  const identity = await loadRunnerIdentity(opts.stateDir)
  // A damaged file stops the start (typed): serving without the operator's changes, or writing
  // over them, would both be silent.
  const projectState =
    opts.persistProjects === false ? undefined : await ProjectState.load(opts.stateDir)
  const registry = new TargetRegistry()
  const projects = projectState?.merge(opts.projects ?? {}) ?? opts.projects ?? {}
  for (const [project, targets] of Object.entries(projects)) registry.set(project, targets)
  const epochs = new EpochTable()
  const event = opts.onEvent ?? (() => {})
  const m = agentMetrics(opts.metrics ?? noopMetrics)
  m.projects(registry.size)
  m.certExpiry(Date.parse(new X509(identity.certPem).validTo))
  const controls = new Map<Session, AgentControl>()
  let connector: ReverseConnector | undefined
  let directAddress: string | undefined
  const handshake = async (
    session: Session,
    slot: number,
    where: Record<string, unknown>,
  ): Promise<void> => {
    const control = await agentHandshake(session, {
      registry,
      epochs,
      slot,
      runnerId: identity.runnerId,
      report: () => ({ ...opts.report(), ...(directAddress ? { directAddress } : {}) }),
      streams: { onOutcome: (o) => m.stream(o.status) },
      onDrain: (advice: Drain) => {
        m.drained()
        const replacing = connector?.drain(session, advice) ?? false
        event('drain', { ...where, reason: advice.reason, replacing })
      },
      onError: (err) => {
        m.controlError(err)
        event('control-error', { ...where, err })
      },
    })
    controls.set(session, control)
    m.session(1)
    session.once('close', () => {
      controls.delete(session)
      m.session(-1)
    })
    event('session', { ...where, edgeId: control.edgeId })
  }
  const closers: Array<() => Promise<void>> = []
  const close = async (): Promise<void> => {
    // Newest first, each once: what started last depends on what started before it.
    for (let c = closers.pop(); c; c = closers.pop()) await c().catch(() => {})
  }
  try {
    let direct: DirectListener | undefined
    if (opts.listen) {
      let n = 0
      direct = await startDirectListener({
        host: opts.listen.host,
        port: opts.listen.port,
        identity,
        // Direct sessions take slots from 32 up so they never supersede the reverse ones.
        handshake: (session, edgeId) =>
          handshake(session, 32 + (n++ % 32), { connector: 'direct', edgeId }),
        onRefused: (code, err) => event('direct-refused', { code, err }),
      })
      closers.push(() => direct!.close())
      directAddress = opts.advertise ?? `${opts.listen.host}:${direct.address.port}`
    }
    connector =
      opts.edges.length > 0 && (opts.slots ?? 2) > 0
        ? new ReverseConnector({
            edges: opts.edges,
            slots: opts.slots ?? 2,
            // Reads identity.keyPem/certPem at each dial, so a renewed cert is used from then on.
            dial: tunnelDialer(identity),
            handshake: (session, info) => handshake(session, info.slot, { ...info }),
            ...(opts.retireGraceMs !== undefined ? { retireGraceMs: opts.retireGraceMs } : {}),
            onError: (err, info) => {
              m.sessionFailed(err)
              event('session-failed', { ...info, err })
            },
          })
        : undefined
    const pickControl = (): AgentControl | undefined => [...controls.values()].at(-1)
    const renewer =
      opts.renew === false
        ? undefined
        : new CertRenewer({
            stateDir: opts.stateDir,
            identity,
            clock: opts.clock ?? wallClock,
            ...(opts.renew?.backoff ? { backoff: opts.renew.backoff } : {}),
            request: (csr) => {
              const control = pickControl()
              if (!control) {
                return Promise.reject(
                  new HopgateError('HOPGATE_ERR_RENEW_FAILED', 'no session to an edge is up'),
                )
              }
              return control.renew(csr)
            },
            onRenewed: (id) => {
              direct?.setIdentity(id)
              m.renewed(true)
              const notAfter = Date.parse(new X509(id.certPem).validTo)
              m.certExpiry(notAfter)
              event('cert-renewed', { runnerId: id.runnerId, notAfter: new Date(notAfter) })
            },
            onError: (err) => {
              m.renewed(false)
              event('renew-failed', { err })
            },
          })
    const handleAdmin = projectAdmin({
      registry,
      epochs,
      controls: () => [...controls.values()],
      ...(projectState ? { state: projectState } : {}),
      onChange: (detail) => {
        m.projects(registry.size)
        event('projects-changed', detail)
      },
    })
    let admin: AdminSocket | undefined
    if (typeof opts.adminSocket === 'string') {
      admin = await startAdminSocket(opts.adminSocket, handleAdmin)
    } else if (opts.adminSocket !== false) {
      // The default path may be too long for a unix socket (about 107 bytes) or sit on a file
      // system without sockets: the agent still serves, and says why it has no admin socket.
      const path = adminSocketPath(opts.stateDir)
      admin = await startAdminSocket(path, handleAdmin).catch((err: unknown) => {
        event('admin-socket-failed', { path, err })
        return undefined
      })
    }
    if (admin) closers.push(() => admin.close())
    const health = opts.health
      ? await startHealthServer({
          ...opts.health,
          ready: () => controls.size > 0,
          ...(opts.renderMetrics ? { render: opts.renderMetrics } : {}),
        })
      : undefined
    if (health) closers.push(() => health.close())
    connector?.start()
    if (connector) closers.push(() => connector!.stop())
    renewer?.start()
    if (renewer) closers.push(() => renewer.stop())
    return {
      runnerId: identity.runnerId,
      identity,
      registry,
      epochs,
      connector,
      direct,
      renewer,
      adminSocket: admin,
      health,
      controls: () => [...controls.values()],
      close,
    }
  } catch (err) {
    // A listener that could not start must not leave the others open.
    await close()
    throw err
  }
}
