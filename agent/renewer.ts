// The agent's certificate renewal loop: sleep until 2/3 of the cert's life, make a new key and a
// CSR, ask the edge over a live control stream, check the answer, store it atomically (the join
// layout) and swap it into the identity the dialer and direct listener read for new sessions.
// A failure keeps the old cert and retries with full-jitter backoff. It opens no sockets itself:
// `request` goes through whichever session is up (agent/agent.ts).
import { Backoff, sleep, type BackoffOptions } from '../shared/backoff.js'
import type { Clock } from '../shared/clock.js'
import { HopgateError, isHopgateError } from '../shared/errors.js'
import { acceptRenewal, prepareRenewal, renewDueAt } from '../certs/renew.js'
import { saveRunnerIdentity, type RunnerIdentity } from '../certs/enroll.js'
import { wallNow } from '../certs/state.js'

export interface RenewerOptions {
  stateDir: string
  /** Updated in place on success, so readers holding it (the dialer) see the new cert. */
  identity: RunnerIdentity
  /** Wall clock (epoch ms): certificate validity is wall time. */
  clock: Clock
  /** Sends the CSR over a live control stream and resolves with the PEM cert. */
  request(csrPem: string): Promise<string>
  /** Retry pacing after a failure. @default base 1000 ms, cap 300000 ms */
  backoff?: BackoffOptions
  onRenewed?(identity: RunnerIdentity): void
  onError?(err: HopgateError): void
}

export class CertRenewer {
  private readonly abort = new AbortController()
  private loop: Promise<void> | undefined
  private readonly backoff: Backoff

  constructor(private readonly opts: RenewerOptions) {
    this.backoff = new Backoff({ baseMs: 1000, capMs: 300_000, ...opts.backoff })
  }

  /** Epoch ms at which the current cert is due. */
  get dueAt(): number {
    return renewDueAt(this.opts.identity.certPem)
  }

  start(): void {
    this.loop ??= this.run()
  }

  async stop(): Promise<void> {
    this.abort.abort()
    await this.loop
  }

  /** One attempt now; throws HOPGATE_ERR_RENEW_FAILED and leaves the old cert in place. */
  async renewOnce(): Promise<RunnerIdentity> {
    const { identity, clock } = this.opts
    try {
      const pending = prepareRenewal(identity.runnerId)
      const certPem = await this.opts.request(pending.csrPem)
      const next = acceptRenewal(identity, pending, certPem, clock)
      // Stored before it is used: a crash after this point restarts with the new pair.
      await saveRunnerIdentity(this.opts.stateDir, next)
      Object.assign(identity, next)
      this.opts.onRenewed?.(identity)
      return identity
    } catch (err) {
      throw isHopgateError(err, 'HOPGATE_ERR_RENEW_FAILED')
        ? err
        : new HopgateError('HOPGATE_ERR_RENEW_FAILED', (err as Error).message, { cause: err })
    }
  }

  private async run(): Promise<void> {
    const { clock } = this.opts
    const signal = this.abort.signal
    let wait = Math.max(0, this.dueAt - wallNow(clock))
    while (!signal.aborted) {
      try {
        await sleep(wait, { clock, signal })
      } catch {
        return
      }
      try {
        await this.renewOnce()
        this.backoff.reset()
        wait = Math.max(0, this.dueAt - wallNow(clock))
      } catch (err) {
        if (signal.aborted) return
        this.opts.onError?.(err as HopgateError)
        wait = this.backoff.next()
      }
    }
  }
}
