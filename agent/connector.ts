// The reverse connector: keeps `slots` yamux sessions dialed out to the edges, each slot on its
// own loop (dial, handshake, serve until the session ends, back off with full jitter, again).
// Slots prefer distinct edges when several are given and rotate to the next edge on failure.
// A keepalive failure closes the session at once (shared/yamux), which is the watchdog: the loop
// never waits for the OS to notice a dead TCP path. Drain advice makes a slot dial its
// replacement before it lets the old session go. Dialing and the handshake are injected.
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
  /** A session replaced after drain advice gets this long for its streams, in ms. @default 30000 */
  retireGraceMs?: number
  /** Told about each failure, for logs and metrics. */
  onError?(err: unknown, info: SlotInfo): void
}

export class ReverseConnector {
  private readonly abort = new AbortController()
  private readonly live = new Map<number, { session: Session; edge: string }>()
  private readonly drainRequests = new Map<number, (alternatives: readonly string[]) => void>()
  private readonly retiring = new Set<Session>()
  /** Drained sessions: when, on this.clock, the advice lets them go at the earliest. */
  private readonly notBefore = new WeakMap<Session, number>()
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
    for (const session of this.retiring) session.close()
    await Promise.all(this.loops)
  }

  /**
   * Drain advice for `session`: its slot dials a replacement (another configured edge first,
   * then the edge's alternatives, then the same address) and retires the old session only once
   * the new one has finished its handshake. Returns false if no slot holds `session`.
   */
  drain(
    session: Session,
    advice: { alternatives?: readonly string[]; reconnectAfterMs?: number } = {},
  ): boolean {
    for (const [slot, v] of this.live) {
      if (v.session !== session) continue
      this.notBefore.set(session, this.clock.now() + (advice.reconnectAfterMs ?? 0))
      this.drainRequests.get(slot)?.(advice.alternatives ?? [])
      return true
    }
    return false
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
        // Dialed here rather than in connect(): a refused dial reaches the backoff at once.
        const transport = await this.opts.dial(edge, signal)
        const up = await this.connect(info, transport)
        backoff.reset()
        await this.serve(slot, up)
      } catch (err) {
        if (signal.aborted) break
        this.opts.onError?.(err, info)
        edgeIndex = (edgeIndex + 1) % edges.length
      }
      if (signal.aborted) break
      await sleep(backoff.next(), { clock: this.clock, signal }).catch(() => {})
    }
  }

  /** Dial and handshake one session; throws (with the session closed) if either fails. */
  private async connect(info: SlotInfo, dialed?: Duplex): Promise<Live> {
    const signal = this.abort.signal
    const transport = dialed ?? (await this.opts.dial(info.edge, signal))
    const session = new Session(transport, {
      role: 'client',
      ...(this.opts.yamux ? { config: this.opts.yamux } : {}),
      clock: this.clock,
    })
    // Not events.once: it would also listen for 'error' and turn a keepalive failure into
    // a rejection that skips the bookkeeping in serve().
    const closed = new Promise<Error | undefined>((resolve) => session.once('close', resolve))
    // stop() may come while this slot is between dial and serving: close what it holds.
    const onAbort = (): void => session.close()
    signal.addEventListener('abort', onAbort, { once: true })
    void closed.then(() => signal.removeEventListener('abort', onAbort))
    try {
      await this.opts.handshake(session, info)
    } catch (err) {
      session.close()
      throw err
    }
    return { session, edge: info.edge, closed }
  }

  /** Serves the slot until its session ends, swapping in replacements on drain advice. */
  private async serve(slot: number, first: Live): Promise<void> {
    const signal = this.abort.signal
    const retry = new Backoff(this.opts.backoff)
    let current = first
    let drainWanted: readonly string[] | undefined
    this.live.set(slot, { session: current.session, edge: current.edge })
    try {
      while (!signal.aborted) {
        let wake!: (alternatives: readonly string[]) => void
        const drained = new Promise<readonly string[]>((resolve) => (wake = resolve))
        this.drainRequests.set(slot, wake)
        const pause =
          drainWanted === undefined
            ? new Promise<never>(() => {})
            : sleep(retry.next(), { clock: this.clock, signal }).then(() => drainWanted!)
        const outcome = await Promise.race([
          current.closed.then((why) => ({ closed: true as const, why })),
          drained.then((alternatives) => ({ closed: false as const, alternatives })),
          pause.then(
            (alternatives) => ({ closed: false as const, alternatives }),
            () => ({ closed: true as const, why: undefined }),
          ),
        ])
        if (outcome.closed) {
          if (outcome.why && !signal.aborted)
            this.opts.onError?.(outcome.why, { slot, edge: current.edge })
          return
        }
        drainWanted = outcome.alternatives
        const next = await this.replace(slot, current.edge, outcome.alternatives)
        if (!next) continue
        this.retire(current.session)
        current = next
        drainWanted = undefined
        retry.reset()
        this.live.set(slot, { session: current.session, edge: current.edge })
      }
    } finally {
      this.drainRequests.delete(slot)
      if (this.live.get(slot)?.session === current.session) this.live.delete(slot)
    }
  }

  /** Tries each candidate edge once for a replacement session; undefined if none came up. */
  private async replace(
    slot: number,
    from: string,
    alternatives: readonly string[],
  ): Promise<Live | undefined> {
    const { edges } = this.opts
    const at = edges.indexOf(from)
    const others = edges.filter((e) => e !== from)
    // Rotate so slots on the same edge spread over the others.
    const rotated = others.map((_, i) => others[(i + Math.max(0, at) + slot) % others.length]!)
    const candidates = [...new Set([...rotated, ...alternatives, from])]
    for (const edge of candidates) {
      if (this.abort.signal.aborted) return undefined
      try {
        return await this.connect({ slot, edge })
      } catch (err) {
        if (!this.abort.signal.aborted) this.opts.onError?.(err, { slot, edge })
      }
    }
    return undefined
  }

  /**
   * GoAway on a replaced session (the edge opens nothing new on it), then close it once only the
   * control stream is left or the grace period is over, so in-flight streams finish.
   */
  private retire(session: Session): void {
    this.retiring.add(session)
    session.once('close', () => this.retiring.delete(session))
    const graceMs = this.opts.retireGraceMs ?? 30_000
    const wait = Math.max(0, (this.notBefore.get(session) ?? 0) - this.clock.now())
    const check = (started: number): void => {
      if (session.closed) return
      if (session.streamCount <= 1 || this.clock.now() - started >= graceMs) session.close()
      else this.clock.setTimeout(() => check(started), 50)
    }
    // The advice's reconnectAfterMs: the old session stays usable that long, then GoAway.
    this.clock.setTimeout(() => {
      session.goAway()
      // Checked on a later tick: Session.close() in the same tick as goAway() ends the transport
      // before the queued GoAway frame is flushed.
      const started = this.clock.now()
      this.clock.setTimeout(() => check(started), 50)
    }, wait)
  }
}

interface Live {
  session: Session
  edge: string
  closed: Promise<Error | undefined>
}
