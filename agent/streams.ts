// What the agent does with each stream the edge opens: read the stream-open header (bounded in
// size and time), fence on the route epoch, look the target up in the registry (never in the
// header: nothing on the wire names an address), dial it, answer one status byte, then pipe.
// Every refusal answers its status before any payload and dials nothing.
import net from 'node:net'
import type { YamuxStream } from '../shared/yamux/index.js'
import { HopgateError, isHopgateError } from '../shared/errors.js'
import { OpenHeaderReader, type OpenHeader } from '../shared/tunnel/open-header.js'
import { encodeOpenStatus, errorToStatus, OpenStatus } from '../shared/tunnel/open-status.js'
import type { Target, TargetRegistry } from './registry.js'
import { bridge } from '../shared/tunnel/bridge.js'

/** Route epochs the agent holds per project (fencing tokens). */
export class EpochTable {
  private readonly epochs = new Map<string, number>()

  get(project: string): number | undefined {
    return this.epochs.get(project)
  }

  /** Records a newer epoch; an older one never replaces a newer one. */
  observe(project: string, epoch: number): void {
    const held = this.epochs.get(project)
    if (held === undefined || epoch > held) this.epochs.set(project, epoch)
  }

  forget(project: string): void {
    this.epochs.delete(project)
  }
}

export interface StreamServerOptions {
  registry: TargetRegistry
  epochs: EpochTable
  /** The whole header must arrive within this, in ms. @default 10000 */
  headerTimeoutMs?: number
  /** Connecting to a target may take this long, in ms. @default 5000 */
  dialTimeoutMs?: number
  /** Overridable for tests; the default is a plain TCP connect. */
  dial?: (target: Target, timeoutMs: number) => Promise<net.Socket>
  /** Called once per stream with its outcome, for logs and metrics. */
  onOutcome?(outcome: { header?: OpenHeader; status: OpenStatus; error?: HopgateError }): void
}

export function serveStream(stream: YamuxStream, opts: StreamServerOptions): void {
  // Every stream gets a status soon (or a reset): its ACK rides on that frame, one fewer per open.
  stream.deferAck()
  const reader = new OpenHeaderReader()
  // Module-level, not a closure: an idle stream must not keep this function's state alive.
  stream.on('error', ignore)
  const timer = setTimeout(() => {
    refuse(new HopgateError('HOPGATE_ERR_OPEN_BAD_HEADER', 'header not received in time'))
  }, opts.headerTimeoutMs ?? 10_000)
  const onData = (chunk: Buffer): void => {
    let got: ReturnType<OpenHeaderReader['push']>
    try {
      got = reader.push(chunk)
    } catch (err) {
      return refuse(
        err instanceof HopgateError ? err : new HopgateError('HOPGATE_ERR_OPEN_BAD_HEADER'),
      )
    }
    if (!got) return
    stop()
    stream.pause()
    void open(stream, got.header, got.rest, opts).catch((err: unknown) =>
      refuse(
        isHopgateError(err) ? err : new HopgateError('HOPGATE_ERR_OPEN_TARGET_DOWN'),
        got.header,
      ),
    )
  }
  const stop = (): void => {
    clearTimeout(timer)
    stream.off('data', onData)
    stream.off('end', onEnd)
  }
  const onEnd = (): void =>
    refuse(new HopgateError('HOPGATE_ERR_OPEN_HEADER_TRUNCATED', 'stream ended'))
  const refuse = (err: HopgateError, header?: OpenHeader): void => {
    stop()
    const status = errorToStatus(err.code) ?? OpenStatus.BadHeader
    opts.onOutcome?.({ ...(header ? { header } : {}), status, error: err })
    if (stream.destroyed) return
    stream.write(encodeOpenStatus(status))
    // Half-close, never reset first: a reset can make the edge drop the unread status byte. The
    // edge resets once it has read it; an edge that never does is reset after the deadline.
    stream.resume()
    stream.close({ timeoutMs: opts.headerTimeoutMs ?? 10_000 }).catch(() => {})
  }
  stream.on('data', onData)
  stream.once('end', onEnd)
}

async function open(
  stream: YamuxStream,
  header: OpenHeader,
  rest: Buffer,
  opts: StreamServerOptions,
): Promise<void> {
  const resolution = opts.registry.resolve(header.project, header.service, header.port)
  if (!resolution.ok) {
    throw new HopgateError(
      resolution.reason === 'unknown-project'
        ? 'HOPGATE_ERR_OPEN_UNKNOWN_PROJECT'
        : 'HOPGATE_ERR_OPEN_REFUSED',
      `${header.project} ${header.service}${header.port ? ':' + header.port : ''}`,
    )
  }
  // Fencing: an epoch older than one we have seen comes from a stale route; a newer one means
  // the route changed to us again since we last heard, which only the store can have decided.
  const held = opts.epochs.get(header.project)
  if (held !== undefined && header.routeEpoch < held) {
    throw new HopgateError('HOPGATE_ERR_OPEN_STALE_EPOCH', `epoch ${header.routeEpoch} < ${held}`)
  }
  opts.epochs.observe(header.project, header.routeEpoch)
  let socket: net.Socket
  try {
    socket = await (opts.dial ?? dialTcp)(resolution.target, opts.dialTimeoutMs ?? 5000)
  } catch (err) {
    throw new HopgateError('HOPGATE_ERR_OPEN_TARGET_DOWN', `${header.project} ${header.service}`, {
      cause: err,
    })
  }
  if (stream.destroyed) return void socket.destroy()
  opts.onOutcome?.({ header, status: OpenStatus.Ok })
  stream.write(encodeOpenStatus(OpenStatus.Ok))
  if (rest.length > 0) socket.write(rest)
  bridge(stream, socket)
}

function ignore(): void {}

function dialTcp(target: Target, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: target.host, port: target.port, allowHalfOpen: true })
    const timer = setTimeout(
      () => socket.destroy(new Error(`connect timeout after ${timeoutMs} ms`)),
      timeoutMs,
    )
    const onError = (err: Error): void => {
      clearTimeout(timer)
      reject(err)
    }
    socket.once('connect', () => {
      clearTimeout(timer)
      // Removed, or it would keep this closure (and its timer) alive as long as the connection.
      socket.off('error', onError)
      resolve(socket)
    })
    socket.once('error', onError)
  })
}
