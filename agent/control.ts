// The agent's side of a session: serve the edge's streams, open the control stream, say hello
// (hosted projects, capacity, storage), take the welcome (route epochs, heartbeat pacing), then
// heartbeat and apply route updates and drain advice. The session ends when the control stream
// does: a session the edge cannot steer is not worth keeping.
import { HopgateError } from '../shared/errors.js'
import type { Session } from '../shared/yamux/index.js'
import { ControlChannel } from '../shared/tunnel/control-channel.js'
import type { ControlMessage, Drain } from '../shared/tunnel/control-schema.js'
import { CONTROL_VERSION } from '../shared/tunnel/control-schema.js'
import { EpochTable, serveStream, type StreamServerOptions } from './streams.js'
import type { TargetRegistry } from './registry.js'

export const AGENT_VERSION = 'hopgate-agent/0.1.0'

export interface AgentReport {
  capacity: { maxProjects: number; cpus: number; memoryBytes: number }
  storage: { freeBytes: number; totalBytes: number }
  directAddress?: string
}

export interface AgentControlOptions {
  registry: TargetRegistry
  epochs: EpochTable
  report(): AgentReport
  slot: number
  /** Informational in the hello; the edge refuses the session if it differs from the certificate. */
  runnerId?: string
  /** The hello and welcome must be exchanged within this, in ms. @default 10000 */
  handshakeTimeoutMs?: number
  streams?: Omit<StreamServerOptions, 'registry' | 'epochs'>
  onDrain?(advice: Drain): void
  onError?(err: unknown): void
}

export interface AgentControl {
  edgeId: string
  leaseTtlMs: number
  /** Last measured control round trip, in ms. */
  rttMs(): number | undefined
}

export async function agentHandshake(
  session: Session,
  opts: AgentControlOptions,
): Promise<AgentControl> {
  session.on('stream', (s) =>
    serveStream(s, { registry: opts.registry, epochs: opts.epochs, ...opts.streams }),
  )
  const channel = new ControlChannel(session.openStream(), 'agent')
  channel.on('error', (err) => opts.onError?.(err))
  channel.once('close', () => session.close())
  const report = opts.report()
  channel.send({
    type: 'hello',
    version: CONTROL_VERSION,
    slot: opts.slot,
    ...(opts.runnerId ? { runnerId: opts.runnerId } : {}),
    projects: opts.registry.hosted(),
    capacity: report.capacity,
    storage: report.storage,
    ...(report.directAddress ? { directAddress: report.directAddress } : {}),
    agentVersion: AGENT_VERSION,
  })
  let first: ControlMessage
  try {
    first = await channel.next(opts.handshakeTimeoutMs ?? 10_000)
  } catch (err) {
    channel.close()
    throw new HopgateError('HOPGATE_ERR_CONTROL_TRUNCATED', 'no welcome from the edge', {
      cause: err,
    })
  }
  if (first.type !== 'welcome') {
    channel.close()
    const code = first.type === 'error' ? first.code : 'unexpected ' + first.type
    throw new HopgateError('HOPGATE_ERR_CONTROL_REFUSED', code)
  }
  for (const r of first.routes ?? []) opts.epochs.observe(r.project, r.epoch)
  let rtt: number | undefined
  const beat = setInterval(() => {
    const load = { streams: session.streamCount, projects: opts.registry.size }
    channel.send({
      type: 'heartbeat',
      sentAt: Math.floor(performance.now()),
      ...(rtt !== undefined ? { rttMs: rtt } : {}),
      load,
      storage: { freeBytes: opts.report().storage.freeBytes },
    })
  }, first.heartbeatIntervalMs)
  beat.unref()
  session.once('close', () => clearInterval(beat))
  channel.on('message', (msg) => {
    switch (msg.type) {
      case 'heartbeatAck':
        rtt = Math.max(0, Math.floor(performance.now()) - msg.echo)
        return
      case 'routeUpdate':
        opts.epochs.observe(msg.project, msg.epoch)
        return
      case 'drain':
        opts.onDrain?.(msg)
        return
      default:
        return
    }
  })
  return { edgeId: first.edgeId, leaseTtlMs: first.leaseTtlMs, rttMs: () => rtt }
}
