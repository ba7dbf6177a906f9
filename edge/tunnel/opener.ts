// The edge's one way to reach a project: resolve its route, pick a live session of that runner,
// open a yamux stream, send the stream-open header with the route's epoch, and wait for the
// agent's status byte. A stale-epoch answer re-resolves once (the route changed under us). Every
// ingress (raw TCP now; HTTP, WebSocket and SSH later) goes through here, whichever connector
// made the session.
import { randomBytes } from 'node:crypto'
import { HopgateError } from '../../shared/errors.js'
import type { YamuxStream } from '../../shared/yamux/index.js'
import { encodeOpenHeader, type Service } from '../../shared/tunnel/open-header.js'
import { statusToError } from '../../shared/tunnel/open-status.js'
import type { EarlySender } from '../../shared/tunnel/early-data.js'
import type { Router } from '../routing/router.js'
import type { SessionTable } from './sessions.js'

export interface OpenRequest {
  project: string
  service: Service
  /** Required for service 'port', 0 otherwise. */
  port?: number
  /** The user's address, `ip:port`, passed to the agent for its logs. */
  clientAddress: string
  traceId?: string
  signal?: AbortSignal
  /** The user's bytes so far and to come, sent right after the header on every attempt. */
  early?: EarlySender
}

export interface OpenedStream {
  /** Paused, positioned at the first payload byte: pipe it or resume() it. */
  stream: YamuxStream
  runner: string
  epoch: number
  traceId: string
}

export interface OpenerOptions {
  router: Router
  sessions: SessionTable
  /** The agent's status byte must come within this, in ms. @default 10000 */
  statusTimeoutMs?: number
  /** Called when a runner has no live session here (the direct connector dials it). */
  connect?: (runnerId: string) => Promise<void>
  /**
   * Still no session after `connect`: open through another edge (edge/cluster/forwarder.ts). It
   * writes `header` as given and resolves with the stream after an ok status, or throws typed.
   */
  forward?: (req: {
    runner: string
    header: Buffer
    signal?: AbortSignal
    early?: EarlySender
  }) => Promise<YamuxStream>
}

// Trace ids come from a pooled random buffer: one randomFillSync per 512 opens, not one each.
const TRACE_POOL_BYTES = 4096
let tracePool = Buffer.alloc(0)
let traceAt = 0
function newTraceId(): string {
  if (traceAt + 8 > tracePool.length) {
    tracePool = randomBytes(TRACE_POOL_BYTES)
    traceAt = 0
  }
  traceAt += 8
  return tracePool.toString('hex', traceAt - 8, traceAt)
}

function ignore(): void {}

export class StreamOpener {
  constructor(private readonly opts: OpenerOptions) {}

  async open(req: OpenRequest): Promise<OpenedStream> {
    const traceId = req.traceId ?? newTraceId()
    try {
      return await this.attempt(req, traceId)
    } catch (err) {
      if (!(err instanceof HopgateError) || err.code !== 'HOPGATE_ERR_OPEN_STALE_EPOCH') throw err
      return this.attempt(req, traceId)
    }
  }

  private async attempt(req: OpenRequest, traceId: string): Promise<OpenedStream> {
    const route = await this.opts.router.resolve(req.project)
    let entry = this.opts.sessions.pick(route.runner)
    if (!entry && this.opts.connect) {
      await this.opts.connect(route.runner)
      entry = this.opts.sessions.pick(route.runner)
    }
    const header = encodeOpenHeader({
      project: req.project,
      service: req.service,
      port: req.port ?? 0,
      routeEpoch: route.epoch,
      clientAddress: req.clientAddress,
      traceId,
    })
    if (!entry && this.opts.forward) {
      const { signal, early } = req
      const stream = await this.opts.forward({
        runner: route.runner,
        header,
        ...(signal && { signal }),
        ...(early && { early }),
      })
      return { stream, runner: route.runner, epoch: route.epoch, traceId }
    }
    if (!entry) {
      throw new HopgateError('HOPGATE_ERR_RUNNER_UNAVAILABLE', `no live session to ${route.runner}`)
    }
    const stream = await entry.session.open(req.signal ? { signal: req.signal } : {})
    // Module-level, not a closure: an idle stream must not keep this call's state alive.
    stream.on('error', ignore)
    stream.write(header)
    req.early?.attach(stream)
    await this.awaitStatus(stream, req.signal)
    return { stream, runner: route.runner, epoch: route.epoch, traceId }
  }

  private awaitStatus(stream: YamuxStream, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const fail = (err: Error): void => {
        cleanup()
        stream.destroy()
        reject(err)
      }
      const onData = (chunk: Buffer): void => {
        cleanup()
        stream.pause()
        const rest = chunk.subarray(1)
        if (rest.length > 0) stream.unshift(rest)
        const err = statusToError(chunk[0]!)
        if (err) {
          stream.destroy()
          reject(err)
        } else {
          resolve()
        }
      }
      const onEnd = (): void =>
        fail(new HopgateError('HOPGATE_ERR_OPEN_TARGET_DOWN', 'stream ended before a status'))
      const onClose = (): void =>
        fail(new HopgateError('HOPGATE_ERR_OPEN_TARGET_DOWN', 'stream reset before a status'))
      const onAbort = (): void => fail(new HopgateError('HOPGATE_ERR_ABORTED'))
      const timer = setTimeout(
        () =>
          fail(
            new HopgateError('HOPGATE_ERR_OPEN_TARGET_DOWN', 'no status from the agent in time'),
          ),
        this.opts.statusTimeoutMs ?? 10_000,
      )
      const cleanup = (): void => {
        clearTimeout(timer)
        stream.off('data', onData)
        stream.off('end', onEnd)
        stream.off('close', onClose)
        signal?.removeEventListener('abort', onAbort)
      }
      stream.on('data', onData)
      stream.once('end', onEnd)
      stream.once('close', onClose)
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }
}
