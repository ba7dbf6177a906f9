// The edge's side of an agent session, once TLS named the runner: accept the control stream,
// take the hello (a runner id in it must match the certificate's), register the runner with a
// lease, claim routes for projects it hosts that have none, answer welcome with their epochs,
// renew the lease on each heartbeat, push route updates for the projects it hosts, answer
// certificate renewals, and carry drain advice out. Streams an agent tries to open are refused:
// only the edge opens user streams.
import { HopgateError, isHopgateError } from '../../shared/errors.js'
import type { Session } from '../../shared/yamux/index.js'
import { ControlChannel } from '../../shared/tunnel/control-channel.js'
import {
  CONTROL_VERSION,
  type ControlMessage,
  type Drain,
} from '../../shared/tunnel/control-schema.js'
import type { Unsequenced } from '../../shared/tunnel/control.js'
import type { RouteStore } from '../routing/store.js'
import type { SessionTable } from './sessions.js'

export interface EdgeControlOptions {
  edgeId: string
  store: RouteStore
  sessions: SessionTable
  heartbeatIntervalMs?: number
  leaseTtlMs?: number
  handshakeTimeoutMs?: number
  /**
   * Signs a renewal CSR for `runnerId` (the session's verified identity) or throws a typed
   * refusal (certs/renew.ts signRenewal). Without it, renewals are refused.
   */
  renew?(runnerId: string, csrPem: string): string | Promise<string>
  onError?(err: unknown, runnerId: string): void
  /** The agent announced a change to the projects it hosts. */
  onProjects?(runnerId: string, change: { added: number; removed: number }): void
  /** A renewal was answered: outcome `ok`, or the refusal's code. */
  onRenew?(runnerId: string, outcome: string): void
}

export async function edgeHandshake(
  session: Session,
  identity: { runnerId: string; connector: 'reverse' | 'direct' },
  opts: EdgeControlOptions,
): Promise<void> {
  const { runnerId } = identity
  const heartbeatIntervalMs = opts.heartbeatIntervalMs ?? 5000
  const leaseTtlMs = opts.leaseTtlMs ?? 3 * heartbeatIntervalMs
  const timeoutMs = opts.handshakeTimeoutMs ?? 10_000
  const stream = await session.accept({ signal: AbortSignal.timeout(timeoutMs) })
  session.on('stream', (s) => s.destroy())
  const channel = new ControlChannel(stream, 'edge')
  channel.on('error', (err) => opts.onError?.(err, runnerId))
  let hello: ControlMessage
  try {
    hello = await channel.next(timeoutMs)
  } catch (err) {
    session.close()
    throw new HopgateError('HOPGATE_ERR_CONTROL_TRUNCATED', `no hello from ${runnerId}`, {
      cause: err,
    })
  }
  if (hello.type !== 'hello') throw new HopgateError('HOPGATE_ERR_CONTROL_OUT_OF_ORDER')
  if (hello.runnerId !== undefined && hello.runnerId !== runnerId) {
    channel.send({
      type: 'error',
      code: 'HOPGATE_ERR_CONTROL_ID_MISMATCH',
      message: 'runner id differs from the certificate',
    })
    stream.end()
    setTimeout(() => session.close(), 100).unref()
    throw new HopgateError(
      'HOPGATE_ERR_CONTROL_ID_MISMATCH',
      `hello says ${hello.runnerId}, certificate says ${runnerId}`,
    )
  }
  const hosted = new Set(hello.projects.map((p) => p.project))
  await opts.store.putRunner(
    runnerId,
    {
      capacity: hello.capacity,
      storage: hello.storage,
      projects: hosted.size,
      edges: [opts.edgeId],
      ...(hello.directAddress ? { directAddress: hello.directAddress } : {}),
    },
    leaseTtlMs,
  )
  const routes = await claimRoutes(opts.store, runnerId, [...hosted])
  // The lease ran from the hello, and claiming routes is one durable write per project: under
  // load that took most of the lease, which then lapsed before the agent's first heartbeat (one
  // interval after welcome), and every edge refused the runner as unhealthy for that gap. Renewed
  // here, it counts from the moment the session can serve. A failure is reported, not fatal: the
  // hello's lease still stands and the next heartbeat retries.
  await opts.store.heartbeat(runnerId, {}, leaseTtlMs).catch((err: unknown) => {
    opts.onError?.(err, runnerId)
  })
  channel.send({
    type: 'welcome',
    version: CONTROL_VERSION,
    edgeId: opts.edgeId,
    heartbeatIntervalMs,
    leaseTtlMs,
    routes,
  })
  opts.sessions.add({
    runnerId,
    slot: hello.slot ?? 0,
    connector: identity.connector,
    session,
    since: Date.now(),
    drain: (advice: Unsequenced<Drain>) => channel.send(advice),
  })
  // Fencing: the runner hears of every epoch change of a project it hosts, including a move away.
  const unsubscribe = opts.store.onChange((change) => {
    if (change.kind === 'route' && hosted.has(change.project)) {
      const { epoch, state } = change.route
      channel.send({ type: 'routeUpdate', project: change.project, epoch, state })
    }
  })
  channel.once('close', () => {
    unsubscribe()
    session.close()
  })
  channel.on('message', (msg) => {
    if (msg.type === 'heartbeat') {
      opts.store
        .heartbeat(
          runnerId,
          {
            storage: { ...hello.storage, freeBytes: msg.storage.freeBytes },
            projects: hosted.size,
          },
          leaseTtlMs,
        )
        .then(
          () =>
            channel.send({ type: 'heartbeatAck', echo: msg.sentAt, leaseExpiresInMs: leaseTtlMs }),
          (err: unknown) => opts.onError?.(err, runnerId),
        )
    } else if (msg.type === 'renewRequest') {
      void answerRenewal(opts, runnerId, msg.seq, msg.csr).then((reply) => channel.send(reply))
    } else if (msg.type === 'projects') {
      for (const p of msg.removed) hosted.delete(p)
      for (const p of msg.added) hosted.add(p.project)
      opts.onProjects?.(runnerId, { added: msg.added.length, removed: msg.removed.length })
      claimRoutes(
        opts.store,
        runnerId,
        msg.added.map((p) => p.project),
      ).catch((err: unknown) => opts.onError?.(err, runnerId))
    }
  })
}

/** One renewal: the new cert, or a typed error naming the request it answers. */
async function answerRenewal(
  opts: EdgeControlOptions,
  runnerId: string,
  seq: number,
  csr: string,
): Promise<
  | { type: 'renewResponse'; cert: string }
  | { type: 'error'; code: string; message: string; about: 'renewRequest'; aboutSeq: number }
> {
  try {
    if (!opts.renew) throw new HopgateError('HOPGATE_ERR_RENEW_FAILED', 'this edge does not renew')
    const cert = await opts.renew(runnerId, csr)
    opts.onRenew?.(runnerId, 'ok')
    return { type: 'renewResponse', cert }
  } catch (err) {
    const e = isHopgateError(err) ? err : new HopgateError('HOPGATE_ERR_RENEW_FAILED')
    opts.onRenew?.(runnerId, e.code)
    return {
      type: 'error',
      code: e.code,
      message: e.message.slice(0, 1024),
      about: 'renewRequest',
      aboutSeq: seq,
    }
  }
}

/** Routes for the given projects: created for this runner where none exists, else as they are. */
async function claimRoutes(
  store: RouteStore,
  runnerId: string,
  projects: string[],
): Promise<Array<{ project: string; epoch: number }>> {
  const out: Array<{ project: string; epoch: number }> = []
  for (const project of projects) {
    let route = await store.getRoute(project)
    if (!route) {
      route = await store
        .casRoute(project, null, { runner: runnerId, state: 'active' })
        .catch(() => store.getRoute(project))
    }
    if (route?.runner === runnerId) out.push({ project, epoch: route.epoch })
  }
  return out
}
