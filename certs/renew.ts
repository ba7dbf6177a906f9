// Runner certificate renewal, the PKI half: when a cert is due (2/3 of its life), the edge's
// decision on a renewal CSR (same runner as the session's verified cert, not revoked, signed by
// the runner CA for a fresh 24 h), and the agent's check of what comes back. The control-stream
// exchange and the retry loop live in edge/tunnel/control.ts and agent/renewer.ts.
import { X509Certificate, createPrivateKey } from 'node:crypto'
import type { Clock } from '../shared/clock.js'
import { HopgateError } from '../shared/errors.js'
import { checkRunnerCsr, createRunnerKeyAndCsr, renewalCommonName, signRunnerCsr } from './csr.js'
import type { RunnerIdentity } from './enroll.js'
import { runnerIdFromCert } from './identity.js'
import { wallNow } from './state.js'

/** Renew once this fraction of the certificate's life has passed. */
export const RENEW_AT_FRACTION = 2 / 3

/** Epoch ms at which `certPem` is due for renewal. */
export function renewDueAt(certPem: string): number {
  const cert = new X509Certificate(certPem)
  const from = Date.parse(cert.validFrom)
  const to = Date.parse(cert.validTo)
  return from + Math.floor((to - from) * RENEW_AT_FRACTION)
}

export interface SignRenewalOptions {
  csrPem: string
  /** From the session's verified certificate, never from the request. */
  runnerId: string
  runnerCa: { certPem: string; keyPem: string }
  revocation?: { isRevoked(id: string): boolean }
  /** Wall clock (epoch ms). */
  clock?: Clock
  lifetimeMs?: number
}

/**
 * The edge's answer to a renewRequest: a new runner cert, or a typed refusal
 * (HOPGATE_ERR_JOIN_CSR_INVALID, HOPGATE_ERR_RENEW_WRONG_RUNNER, HOPGATE_ERR_PKI_REVOKED).
 */
export function signRenewal(opts: SignRenewalOptions): string {
  const { commonName } = checkRunnerCsr(opts.csrPem)
  // The CN is checked only to catch an agent that mixed up its identities; the issued SAN comes
  // from the session either way.
  if (commonName !== renewalCommonName(opts.runnerId)) {
    throw new HopgateError(
      'HOPGATE_ERR_RENEW_WRONG_RUNNER',
      `session is runner ${opts.runnerId}, request names ${JSON.stringify(commonName ?? '')}`.slice(
        0,
        200,
      ),
    )
  }
  if (opts.revocation?.isRevoked(opts.runnerId)) {
    throw new HopgateError('HOPGATE_ERR_PKI_REVOKED', `runner ${opts.runnerId}`)
  }
  return signRunnerCsr({
    csrPem: opts.csrPem,
    runnerId: opts.runnerId,
    runnerCa: opts.runnerCa,
    ...(opts.clock ? { clock: opts.clock } : {}),
    ...(opts.lifetimeMs !== undefined ? { lifetimeMs: opts.lifetimeMs } : {}),
  })
}

export interface PendingRenewal {
  keyPem: string
  csrPem: string
}

/** A fresh key and a CSR naming the runner; the key never leaves this process until stored. */
export function prepareRenewal(runnerId: string): PendingRenewal {
  return createRunnerKeyAndCsr(runnerId)
}

/**
 * Checks the edge's new cert against what the agent already trusts (our new key, the runner CA
 * from enrollment, the same runner id, valid now) and returns the identity to store.
 */
export function acceptRenewal(
  current: RunnerIdentity,
  pending: PendingRenewal,
  certPem: string,
  clock: Clock,
): RunnerIdentity {
  try {
    const cert = new X509Certificate(certPem)
    if (!cert.checkPrivateKey(createPrivateKey(pending.keyPem))) {
      throw new Error('certificate is not for the new key')
    }
    const id = runnerIdFromCert(cert, new X509Certificate(current.runnerCaPem), wallNow(clock))
    if (id !== current.runnerId) throw new Error(`certificate names runner ${id}`)
  } catch (err) {
    throw new HopgateError('HOPGATE_ERR_RENEW_FAILED', (err as Error).message, { cause: err })
  }
  return { ...current, keyPem: pending.keyPem, certPem }
}
