// Edge-to-edge forwarding, ingress side: when this edge holds no session to a route's runner, the
// opener hands the encoded stream-open header here. Candidates are the live edges the runner's
// record lists (non-draining first, draining last: it still relays until it closes), then other
// live edges. Each try opens a stream on the peer link and writes preamble + header in one go
// (no extra round trip); the first byte back is the receiving edge's refusal (0x80+, try the
// next) or the agent's own open status, relayed. Fencing is the agent's, on the header's epoch.
import type { YamuxStream } from '../../shared/yamux/index.js'
import { HopgateError, isHopgateError } from '../../shared/errors.js'
import { statusToError } from '../../shared/tunnel/open-status.js'
import type { EarlySender } from '../../shared/tunnel/early-data.js'
import type { RouteStore } from '../routing/store.js'
import type { ClusterMember } from './member.js'
import type { PeerLinks } from './peer-link.js'
import type { EdgeRecord } from './registry.js'
import { MAX_HOPS, PeerStatus, encodePreamble, isPeerStatus } from './peer-wire.js'
import { noopMetrics, type Counter, type Metrics } from '../../shared/metrics.js'
import { codeLabel } from '../tunnel/metrics.js'
import { EDGE_CLUSTER_METRICS } from './metrics.js'

export interface ForwarderOptions {
  store: RouteStore
  member: ClusterMember
  links: PeerLinks
  /** Edges tried per stream, at most. @default 3 */
  maxAttempts?: number
  /** The first byte back (peer refusal or the agent's status) must come within this, in ms. @default 10000 */
  statusTimeoutMs?: number
  onEvent?(event: string, detail: Record<string, unknown>): void
  /** Forwarded streams and tries (edge/cluster/metrics.ts). @default noopMetrics */
  metrics?: Metrics
}

export interface ForwardRequest {
  runner: string
  /** The encoded stream-open header, exactly as the agent must see it. */
  header: Buffer
  signal?: AbortSignal
  /** The user's early bytes: sent after the header on each try, again after a refusal. */
  early?: EarlySender
}

export class Forwarder {
  private readonly streams: Counter
  private readonly attempts: Counter

  constructor(private readonly opts: ForwarderOptions) {
    const metrics = opts.metrics ?? noopMetrics
    this.streams = metrics.counter(EDGE_CLUSTER_METRICS.forwardStreams)
    this.attempts = metrics.counter(EDGE_CLUSTER_METRICS.forwardAttempts)
  }

  /** A stream through another edge, positioned after an ok status (paused), or a typed error. */
  async forward(req: ForwardRequest): Promise<YamuxStream> {
    try {
      const stream = await this.tryCandidates(req)
      this.streams.inc({ result: 'ok' })
      return stream
    } catch (err) {
      this.streams.inc({ result: codeLabel(isHopgateError(err) ? err.code : undefined) })
      throw err
    }
  }

  private async tryCandidates(req: ForwardRequest): Promise<YamuxStream> {
    const candidates = await this.candidates(req.runner)
    let last: unknown
    for (const edge of candidates.slice(0, this.opts.maxAttempts ?? 3)) {
      req.signal?.throwIfAborted()
      let stream: YamuxStream
      try {
        const link = await this.opts.links.get(edge.edgeId, edge.peerAddress)
        stream = link.openStream()
      } catch (err) {
        last = err
        this.attempts.inc({ outcome: 'link_failed' })
        this.opts.onEvent?.('forward-link-failed', { edgeId: edge.edgeId, err })
        continue
      }
      stream.on('error', () => {})
      stream.write(
        Buffer.concat([encodePreamble({ runnerId: req.runner, hops: MAX_HOPS }), req.header]),
      )
      req.early?.attach(stream)
      const answer = await this.firstByte(stream, req.signal)
      this.attempts.inc({ outcome: answer.kind === 'status' ? 'answered' : 'refused' })
      if (answer.kind === 'status') {
        const err = statusToError(answer.status)
        if (!err) return stream
        stream.destroy()
        throw err
      }
      // Nothing reached a user yet: a refusal or a link that died before answering is retried.
      stream.destroy()
      last = answer.err
      this.opts.onEvent?.('forward-refused', { edgeId: edge.edgeId, err: answer.err })
      if (isHopgateError(answer.err, 'HOPGATE_ERR_ABORTED')) throw answer.err
    }
    throw new HopgateError(
      'HOPGATE_ERR_PEER_UNAVAILABLE',
      `runner ${req.runner}: ${candidates.length} candidate edge(s)`,
      { cause: last },
    )
  }

  /** Holders of the runner's sessions first (non-draining, then draining), then other live edges. */
  async candidates(runnerId: string): Promise<EdgeRecord[]> {
    const runner = await this.opts.store.getRunner(runnerId)
    const listed = new Set(runner?.edges ?? [])
    const peers = shuffle(this.opts.member.peers())
    const rank = (e: EdgeRecord): number => (listed.has(e.edgeId) ? 0 : 2) + (e.draining ? 1 : 0)
    return peers
      .map((e) => ({ e, r: rank(e) }))
      .sort((a, b) => a.r - b.r)
      .map((x) => x.e)
  }

  private firstByte(
    stream: YamuxStream,
    signal?: AbortSignal,
  ): Promise<{ kind: 'status'; status: number } | { kind: 'retry'; err: HopgateError }> {
    return new Promise((resolve) => {
      const done = (
        v: { kind: 'status'; status: number } | { kind: 'retry'; err: HopgateError },
      ): void => {
        clearTimeout(timer)
        stream.off('data', onData)
        stream.off('end', onEnd)
        stream.off('close', onEnd)
        signal?.removeEventListener('abort', onAbort)
        resolve(v)
      }
      const onData = (chunk: Buffer): void => {
        stream.pause()
        const byte = chunk[0]!
        if (isPeerStatus(byte)) {
          const why =
            byte === PeerStatus.NoSession
              ? 'no session there'
              : `peer status 0x${byte.toString(16)}`
          return done({ kind: 'retry', err: new HopgateError('HOPGATE_ERR_PEER_REFUSED', why) })
        }
        const rest = chunk.subarray(1)
        if (rest.length > 0) stream.unshift(rest)
        done({ kind: 'status', status: byte })
      }
      const onEnd = (): void =>
        done({
          kind: 'retry',
          err: new HopgateError('HOPGATE_ERR_PEER_REFUSED', 'peer stream closed before a status'),
        })
      const onAbort = (): void =>
        done({ kind: 'retry', err: new HopgateError('HOPGATE_ERR_ABORTED') })
      const timer = setTimeout(
        () =>
          done({
            kind: 'retry',
            err: new HopgateError('HOPGATE_ERR_PEER_REFUSED', 'no status from the peer in time'),
          }),
        this.opts.statusTimeoutMs ?? 10_000,
      )
      stream.on('data', onData)
      stream.once('end', onEnd)
      stream.once('close', onEnd)
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }
}

function shuffle<T>(xs: T[]): T[] {
  const a = [...xs]
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    ;[a[i], a[j]] = [a[j]!, a[i]!]
  }
  return a
}
