// The reverse connector: keeps `slots` yamux sessions dialed out to the edges, each slot on its
// own loop (dial, handshake, serve until the session ends, back off with full jitter, again).
// Slots prefer distinct edges when several are given and rotate to the next edge on failure.
// A keepalive failure closes the session at once (shared/yamux), which is the watchdog: the loop
// never waits for the OS to notice a dead TCP path. Dialing and the handshake are injected.
import type { Duplex } from 'node:stream'
import { Backoff, sleep, type BackoffOptions } from '../shared/backoff.js'
import { systemClock, type Clock } from '../shared/clock.js'
import { Session, type YamuxConfig } from '../shared/yamux/index.js'

export interface SlotInfo {
  slot: number
  edge: string
}

export interface ConnectorOptions {
  /** Edge tunnel addresses (`host:port`). */
  edges: string[]
  /** Sessions to keep. @default 2 */
  slots?: number
  /** Opens an authenticated transport to `edge` (mutual TLS in production). */
  dial(edge: string, signal: AbortSignal): Promise<Duplex>
  /** Runs the control handshake on a fresh session; throws to reject it. */
  handshake(session: Session, info: SlotInfo): Promise<void>
  backoff?: BackoffOptions
  yamux?: Partial<YamuxConfig>
  clock?: Clock
  /** Told about each failure, for logs and metrics. */
  onError?(err: unknown, info: SlotInfo): void
}

export class ReverseConnector {
  private readonly abort = new AbortController()
  private readonly live = new Map<number, { session: Session; edge: string }>()
  private readonly loops: Array<Promise<void>> = []
  private readonly clock: Clock
  private keepProcessAlive: NodeJS.Timeout | undefined
  private edges: string[]

  constructor(private readonly opts: ConnectorOptions) {
    if (opts.edges.length === 0) throw new RangeError('at least one edge address is needed')
    this.clock = opts.clock ?? systemClock
    this.edges = [...opts.edges]
  }

  /**
   * Replaces the edge list (discovery refreshed it). Live sessions stay where they are; each slot
   * reads the list again on its next dial. An empty list is ignored: keep trying the old one.
   */
  setEdges(edges: readonly string[]): void {
    if (edges.length > 0) this.edges = [...edges]
  }

  start(): void {
    // Timers here are unref'd (shared/clock): with every session down and the loops asleep in
    // backoff, nothing else would keep an agent process alive. A running connector must.
    this.keepProcessAlive ??= setInterval(() => {}, 1 << 30)
    const slots = this.opts.slots ?? 2
    for (let slot = 0; slot < slots; slot++) this.loops.push(this.run(slot))
  }

  /** The sessions up now, by slot. */
  sessions(): Array<{ slot: number; edge: string; session: Session }> {
    return [...this.live].map(([slot, v]) => ({ slot, ...v }))
  }

  /** Stops every loop and closes every session. */
  async stop(): Promise<void> {
    clearInterval(this.keepProcessAlive)
    this.keepProcessAlive = undefined
    this.abort.abort()
    for (const { session } of this.live.values()) session.close()
    await Promise.all(this.loops)
  }

  private async run(slot: number): Promise<void> {
    const backoff = new Backoff(this.opts.backoff)
    const signal = this.abort.signal
    // Slot i starts on edge i: with several edges the slots land on distinct ones.
    let edgeIndex = slot % this.edges.length
    while (!signal.aborted) {
      const edges = this.edges
      edgeIndex %= edges.length
      const edge = edges[edgeIndex]!
      const info = { slot, edge }
      try {
        const transport = await this.opts.dial(edge, signal)
        const session = new Session(transport, {
          role: 'client',
          ...(this.opts.yamux ? { config: this.opts.yamux } : {}),
          clock: this.clock,
        })
        // Not events.once: it would also listen for 'error' and turn a keepalive failure into
        // a rejection that skips the bookkeeping below.
        const closed = new Promise<Error | undefined>((resolve) => session.once('close', resolve))
        // stop() may come while this slot is between dial and serving: close what it holds.
        const onAbort = (): void => session.close()
        signal.addEventListener('abort', onAbort, { once: true })
        try {
          try {
            await this.opts.handshake(session, info)
          } catch (err) {
            session.close()
            throw err
          }
          this.live.set(slot, { session, edge })
          backoff.reset()
          const why = await closed
          if (why && !signal.aborted) this.opts.onError?.(why, info)
        } finally {
          this.live.delete(slot)
          signal.removeEventListener('abort', onAbort)
        }
      } catch (err) {
        if (signal.aborted) break
        this.opts.onError?.(err, info)
        edgeIndex = (edgeIndex + 1) % edges.length
      }
      if (signal.aborted) break
      await sleep(backoff.next(), { clock: this.clock, signal }).catch(() => {})
    }
  }
}
