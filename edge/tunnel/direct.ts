// The direct connector, edge side: when a runner has no live session to this edge but registered
// a direct address, the edge dials it (mutual TLS: the edge's client cert from the edge CA; the
// agent's cert must be from the runner CA and name exactly that runner) and runs the same control
// handshake as for a reverse session. Concurrent requests for one runner share one dial.
import type { TLSSocket } from 'node:tls'
import { X509Certificate } from 'node:crypto'
import { HopgateError } from '../../shared/errors.js'
import { Session, type YamuxConfig } from '../../shared/yamux/index.js'
import { identifyTlsPeer } from '../../certs/identity.js'
import { TUNNEL_ALPN } from '../../certs/wire.js'
import { dialMutualTls } from '../../certs/dial.js'
import type { Pki } from '../../certs/pki.js'
import type { Revocations } from '../../certs/revocation.js'
import type { RouteStore } from '../routing/store.js'
import { edgeHandshake, type EdgeControlOptions } from './control.js'

export interface DirectDialerOptions {
  pki: Pki
  store: RouteStore
  revocation: Revocations
  control: EdgeControlOptions
  yamux?: Partial<YamuxConfig>
  connectTimeoutMs?: number
}

export class DirectDialer {
  private readonly inflight = new Map<string, Promise<void>>()
  private readonly runnerCa: X509Certificate

  constructor(private readonly opts: DirectDialerOptions) {
    this.runnerCa = new X509Certificate(opts.pki.runnerCa.certPem)
  }

  /** Makes sure a session to `runnerId` exists, dialing its direct address if it registered one. */
  connect(runnerId: string): Promise<void> {
    let p = this.inflight.get(runnerId)
    if (!p) {
      p = this.dial(runnerId).finally(() => this.inflight.delete(runnerId))
      this.inflight.set(runnerId, p)
    }
    return p
  }

  private async dial(runnerId: string): Promise<void> {
    const runner = await this.opts.store.getRunner(runnerId)
    if (!runner?.directAddress) {
      throw new HopgateError(
        'HOPGATE_ERR_RUNNER_UNAVAILABLE',
        `no session to ${runnerId} and no direct address`,
      )
    }
    if (this.opts.revocation.isRevoked(runnerId))
      throw new HopgateError('HOPGATE_ERR_PKI_REVOKED', runnerId)
    const socket = await this.tls(runner.directAddress)
    let peer: string
    try {
      peer = identifyTlsPeer(socket, {
        kind: 'runner',
        ca: this.runnerCa,
        now: Date.now(),
        revocation: this.opts.revocation,
      }).id
    } catch (err) {
      socket.destroy()
      throw err
    }
    if (peer !== runnerId) {
      socket.destroy()
      throw new HopgateError(
        'HOPGATE_ERR_PKI_BAD_IDENTITY',
        `${runner.directAddress} answered as ${peer}, not ${runnerId}`,
      )
    }
    const session = new Session(socket, {
      role: 'server',
      ...(this.opts.yamux ? { config: this.opts.yamux } : {}),
    })
    await edgeHandshake(session, { runnerId, connector: 'direct' }, this.opts.control).catch(
      (err: unknown) => {
        session.close()
        throw err
      },
    )
  }

  private tls(address: string): Promise<TLSSocket> {
    // Who answered (the runner URI SAN) is checked by the caller, with identifyTlsPeer.
    return dialMutualTls({
      address,
      keyPem: this.opts.pki.edgeClient.keyPem,
      certPem: this.opts.pki.edgeClient.chainPem,
      caPem: this.opts.pki.runnerCa.certPem,
      alpn: TUNNEL_ALPN,
      timeoutMs: this.opts.connectTimeoutMs ?? 5000,
    }).catch((err: unknown) => {
      throw new HopgateError('HOPGATE_ERR_RUNNER_UNAVAILABLE', `direct dial to ${address} failed`, {
        cause: err,
      })
    })
  }
}
