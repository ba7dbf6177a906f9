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

export interface AgentOptions {
  stateDir: string
  edges: string[]
  slots?: number
  projects?: Record<string, ProjectTargetsInput>
  report: () => AgentReport
  onEvent?: (event: string, detail: Record<string, unknown>) => void
}

export interface Agent {
  runnerId: string
  registry: TargetRegistry
  epochs: EpochTable
  connector: ReverseConnector
  close(): Promise<void>
}

export async function startAgent(opts: AgentOptions): Promise<Agent> {
  const identity = await loadRunnerIdentity(opts.stateDir)
  const registry = new TargetRegistry()
  for (const [project, targets] of Object.entries(opts.projects ?? {}))
    registry.set(project, targets)
  const epochs = new EpochTable()
  const event = opts.onEvent ?? (() => {})
  const connector = new ReverseConnector({
    edges: opts.edges,
    slots: opts.slots ?? 2,
    dial: tunnelDialer(identity),
    handshake: async (session, info) => {
      const control = await agentHandshake(session, {
        registry,
        epochs,
        slot: info.slot,
        runnerId: identity.runnerId,
        report: opts.report,
        onDrain: (advice: Drain) => event('drain', { ...info, reason: advice.reason }),
        onError: (err) => event('control-error', { ...info, err }),
      })
      event('session', { ...info, edgeId: control.edgeId })
    },
    onError: (err, info) => event('session-failed', { ...info, err }),
  })
  connector.start()
  return { runnerId: identity.runnerId, registry, epochs, connector, close: () => connector.stop() }
}
