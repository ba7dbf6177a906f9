// Ping and keepalive for one session: numbering pings, matching pongs, the RTT estimate, and
// the jittered keepalive that declares the peer dead when a ping goes unanswered. Frames go out
// through the session; this file never touches the transport.
import { HopgateError, abortError } from '../errors.js'
import type { Clock, TimerGroup, TimerHandle } from '../clock.js'
import type { YamuxConfig } from './config.js'
import { MAX_STREAM_ID } from './frame.js'

export interface PingHost {
  isClosed(): boolean
  sendPing(opaque: number): void
  /** Keepalive failed: the session should end with this error. */
  keepAliveFailed(err: HopgateError): void
}

interface PendingPing {
  sentAt: number
  timer: TimerHandle
  settle(err: Error | undefined, rtt?: number): void
}

export class Pinger {
  /** Smoothed RTT in milliseconds (EWMA, 1/4 weight on new samples); 0 until the first pong. */
  rttMs = 0
  private readonly pending = new Map<number, PendingPing>()
  private nextId = 1
  private keepAliveTimer: TimerHandle | undefined

  constructor(
    private readonly host: PingHost,
    private readonly config: YamuxConfig,
    private readonly clock: Clock,
    private readonly timers: TimerGroup,
  ) {}

  get outstanding(): number {
    return this.pending.size
  }

  ping(signal?: AbortSignal): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      const id = this.nextId
      this.nextId = this.nextId >= MAX_STREAM_ID ? 1 : this.nextId + 1
      const onAbort = (): void => settle(abortError(signal!))
      const settle = (err: Error | undefined, rtt?: number): void => {
        const entry = this.pending.get(id)
        if (!entry) return
        this.pending.delete(id)
        this.timers.clear(entry.timer)
        signal?.removeEventListener('abort', onAbort)
        if (err) reject(err)
        else resolve(rtt!)
      }
      const timer = this.timers.set(
        () => settle(new HopgateError('HOPGATE_ERR_YAMUX_PING_TIMEOUT')),
        this.config.pingTimeoutMs,
      )
      this.pending.set(id, { sentAt: this.clock.now(), timer, settle })
      signal?.addEventListener('abort', onAbort, { once: true })
      this.host.sendPing(id)
    })
  }

  /** A Ping(ACK) arrived; unknown values (late or forged) are ignored. */
  onPong(opaque: number): void {
    const entry = this.pending.get(opaque)
    if (!entry) return
    const rtt = this.clock.now() - entry.sentAt
    this.rttMs = this.rttMs === 0 ? rtt : this.rttMs * 0.75 + rtt * 0.25
    entry.settle(undefined, rtt)
  }

  startKeepAlive(): void {
    if (this.config.keepAliveIntervalMs > 0) this.scheduleKeepAlive()
  }

  /** Fails every outstanding ping and stops the keepalive. */
  stop(err: Error): void {
    for (const entry of [...this.pending.values()]) entry.settle(err)
    this.timers.clear(this.keepAliveTimer)
    this.keepAliveTimer = undefined
  }

  private scheduleKeepAlive(): void {
    const { keepAliveIntervalMs: interval, keepAliveJitter: jitter } = this.config
    // Jitter keeps a fleet of agents that reconnected together from pinging in lockstep.
    const delay = interval * (1 + jitter * (2 * Math.random() - 1))
    this.keepAliveTimer = this.timers.set(() => {
      this.keepAliveTimer = undefined
      this.ping().then(
        () => {
          if (!this.host.isClosed()) this.scheduleKeepAlive()
        },
        (err: unknown) => {
          if (this.host.isClosed()) return
          const timedOut =
            err instanceof HopgateError && err.code === 'HOPGATE_ERR_YAMUX_PING_TIMEOUT'
          this.host.keepAliveFailed(
            new HopgateError(
              'HOPGATE_ERR_YAMUX_KEEPALIVE_TIMEOUT',
              undefined,
              timedOut ? {} : { cause: err },
            ),
          )
        },
      )
    }, delay)
  }
}
