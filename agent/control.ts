// The agent's side of a session: serve the edge's streams, open the control stream, say hello
// (hosted projects, capacity, storage), take the welcome (route epochs, heartbeat pacing), then
// heartbeat, apply route updates, pass drain advice up, and carry certificate renewals (one at a
// time) and project changes to the edge. The session ends when the control stream does: a
// session the edge cannot steer is not worth keeping.
import { HopgateError } from '../shared/errors.js'
import type { Session } from '../shared/yamux/index.js'
import { ControlChannel } from '../shared/tunnel/control-channel.js'
import type { ControlMessage, Drain, HostedProject } from '../shared/tunnel/control-schema.js'
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
  /**
   * Sends a renewal CSR and resolves with the edge's PEM cert; rejects HOPGATE_ERR_RENEW_FAILED
   * on a refusal (the edge's code is the cause), a timeout, a closed session or one in flight.
   */
  renew(csrPem: string, timeoutMs?: number): Promise<string>
  /** Tells the edge which projects appeared or went away on this runner. */
  projectsChanged(added: HostedProject[], removed: string[]): void
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
  let renewal: { resolve(cert: string): void; reject(err: Error): void; seq: number } | undefined
  const failRenewal = (detail: string, cause?: unknown): void => {
    const r = renewal
    renewal = undefined
    r?.reject(new HopgateError('HOPGATE_ERR_RENEW_FAILED', detail, { cause }))
  }
  channel.once('close', () => failRenewal('the session closed'))
  const sendBeat = (): void => {
    const load = { streams: session.streamCount, projects: opts.registry.size }
    channel.send({
      type: 'heartbeat',
      sentAt: Math.floor(performance.now()),
      ...(rtt !== undefined ? { rttMs: rtt } : {}),
      load,
      storage: { freeBytes: opts.report().storage.freeBytes },
    })
  }
  // The first one at once: the lease the edge granted is already running, and waiting a whole
  // interval left a gap in which the runner looked unhealthy to every edge.
  sendBeat()
  const beat = setInterval(sendBeat, first.heartbeatIntervalMs)
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
      case 'renewResponse': {
        const r = renewal
        renewal = undefined
        r?.resolve(msg.cert)
        return
      }
      case 'error':
        if (msg.about === 'renewRequest' && renewal && msg.aboutSeq === renewal.seq) {
          // The edge's code is only a peer's word: kept as the cause, never branched on.
          failRenewal(`edge refused: ${msg.code}`, new Error(msg.message))
        }
        return
      default:
        return
    }
  })
  return {
    edgeId: first.edgeId,
    leaseTtlMs: first.leaseTtlMs,
    rttMs: () => rtt,
    renew: (csrPem, timeoutMs = 30_000) =>
      new Promise<string>((resolve, reject) => {
        if (renewal) {
          return reject(new HopgateError('HOPGATE_ERR_RENEW_FAILED', 'a renewal is in flight'))
        }
        if (channel.stream.destroyed) {
          return reject(new HopgateError('HOPGATE_ERR_RENEW_FAILED', 'the session closed'))
        }
        const timer = setTimeout(() => failRenewal(`no answer in ${timeoutMs} ms`), timeoutMs)
        timer.unref()
        renewal = {
          seq: channel.nextSeq,
          resolve: (cert) => (clearTimeout(timer), resolve(cert)),
          reject: (err) => (clearTimeout(timer), reject(err)),
        }
        channel.send({ type: 'renewRequest', csr: csrPem })
      }),
    projectsChanged: (added, removed) => {
      if (added.length > 0 || removed.length > 0) channel.send({ type: 'projects', added, removed })
    },
  }
}
