// One agent process, assembled: the runner identity from enrollment, the target registry, the
// epoch table and the reverse connector keeping `slots` sessions to the edges. The direct
// listener, the local admin socket and storage join in later steps.
import { loadRunnerIdentity } from '../certs/enroll.js'
import type { Drain } from '../shared/tunnel/control-schema.js'
import { ReverseConnector } from './connector.js'
import { agentHandshake, type AgentReport } from './control.js'
import { tunnelDialer } from './dial.js'
import { TargetRegistry, type ProjectTargetsInput } from './registry.js'
import { EpochTable } from './streams.js'
import { startDirectListener, type DirectListener } from './direct.js'
import type { Session } from '../shared/yamux/index.js'

export interface AgentOptions {
  stateDir: string
  edges: string[]
  slots?: number
  /** Listen for the edge's direct dial here (in-cluster runners), e.g. `{ host: '0.0.0.0', port: 7444 }`. */
  listen?: { host: string; port: number }
  /** The address edges should dial, as registered in the store; defaults to the listen address. */
  advertise?: string
  projects?: Record<string, ProjectTargetsInput>
  report: () => AgentReport
  onEvent?: (event: string, detail: Record<string, unknown>) => void
}

export interface Agent {
  runnerId: string
  registry: TargetRegistry
  epochs: EpochTable
  connector: ReverseConnector | undefined
  direct: DirectListener | undefined
  close(): Promise<void>
}

export async function startAgent(opts: AgentOptions): Promise<Agent> {
  const identity = await loadRunnerIdentity(opts.stateDir)
  const registry = new TargetRegistry()
  for (const [project, targets] of Object.entries(opts.projects ?? {}))
    registry.set(project, targets)
  const epochs = new EpochTable()
  const event = opts.onEvent ?? (() => {})
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
      onDrain: (advice: Drain) => event('drain', { ...where, reason: advice.reason }),
      onError: (err) => event('control-error', { ...where, err }),
    })
    event('session', { ...where, edgeId: control.edgeId })
  }
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
    directAddress = opts.advertise ?? `${opts.listen.host}:${direct.address.port}`
  }
  const connector =
    opts.edges.length > 0 && (opts.slots ?? 2) > 0
      ? new ReverseConnector({
          edges: opts.edges,
          slots: opts.slots ?? 2,
          dial: tunnelDialer(identity),
          handshake: (session, info) => handshake(session, info.slot, { ...info }),
          onError: (err, info) => event('session-failed', { ...info, err }),
        })
      : undefined
  connector?.start()
  return {
    runnerId: identity.runnerId,
    registry,
    epochs,
    connector,
    direct,
    close: async () => {
      await connector?.stop()
      await direct?.close()
    },
  }
}
