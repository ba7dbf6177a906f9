// Enrollment over TLS: the edge side answers one join (token + CSR -> runner cert), the agent
// side checks the edge against the CA pinned in its token before sending anything, then stores
// its identity. Not here: the TLS listener and ALPN dispatch (edge), renewal (control stream).
//
// Agent layout (directory 0700), under <stateDir>/agent/: runner.key (0600), runner.crt,
// runner-ca.crt, edge-ca.crt (0644).
import { X509Certificate, createPrivateKey } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { isIP } from 'node:net'
import { connect, type TLSSocket } from 'node:tls'
import type { Clock } from '../shared/clock.js'
import { ERROR_CATALOG, HopgateError, isHopgateError, type ErrorCode } from '../shared/errors.js'
import { checkRunnerCsr, createRunnerKeyAndCsr, signRunnerCsr } from './csr.js'
import { EKU_SERVER_AUTH, assertIssuedBy, assertLeafUsage, assertValidAt } from './identity.js'
import { hopgateIdOf, runnerIdFromCert } from './identity.js'
import { fingerprintOf, type PkiEntry } from './pki.js'
import { agentPath, ensurePrivateDir, wallClock, wallNow, writeFileAtomic } from './state.js'
import { consumeJoinToken, parseJoinToken, type TokenStore } from './tokens.js'
import { JOIN_ALPN, JOIN_VERSION, JoinReplySchema, JoinRequestSchema } from './wire.js'
import { encodeMessage, readOneMessage } from './wire.js'

export { createRunnerKeyAndCsr, signRunnerCsr } from './csr.js'

export interface ServeJoinDeps {
  pki: { runnerCa: PkiEntry; edgeCa: PkiEntry }
  tokens: TokenStore
  revocation?: { isRevoked(id: string): boolean }
  /** Wall clock (epoch ms) for expiry, and the deadline's timers. @default wallClock */
  clock?: Clock
  /** Deadline for the agent's message. @default 10000 */
  timeoutMs?: number
  certLifetimeMs?: number
}

export type JoinOutcome =
  { ok: true; runnerId: string; serial: string } | { ok: false; code: ErrorCode }

/**
 * Answers one join on a TLS socket that negotiated `hopgate-join/1`, then ends it. Never throws:
 * the outcome is returned for logging and metrics, the agent gets a typed error reply.
 */
export async function serveJoin(socket: TLSSocket, deps: ServeJoinDeps): Promise<JoinOutcome> {
  const clock = deps.clock ?? wallClock
  const timeoutMs = deps.timeoutMs ?? 10_000
  socket.on('error', () => undefined) // a reset peer must not crash the edge; outcome says why
  let reply: object
  let outcome: JoinOutcome
  try {
    if (socket.alpnProtocol !== JOIN_ALPN) {
      throw new HopgateError('HOPGATE_ERR_JOIN_BAD_MESSAGE', 'connection is not hopgate-join/1')
    }
    const parsed = JoinRequestSchema.safeParse(await readOneMessage(socket, { clock, timeoutMs }))
    if (!parsed.success) throw new HopgateError('HOPGATE_ERR_JOIN_BAD_MESSAGE', 'not a join')
    if (parsed.data.version !== JOIN_VERSION) {
      throw new HopgateError('HOPGATE_ERR_JOIN_BAD_MESSAGE', `version ${parsed.data.version}`)
    }
    // The CSR is checked before the token is spent, so a broken agent can retry with its token.
    checkRunnerCsr(parsed.data.csr)
    const runnerId = await consumeJoinToken(deps.tokens, parsed.data.token, clock, {
      edgeCaFingerprint: deps.pki.edgeCa.fingerprint.base64url,
    })
    if (deps.revocation?.isRevoked(runnerId)) {
      throw new HopgateError('HOPGATE_ERR_PKI_REVOKED', `runner ${runnerId}`)
    }
    const cert = signRunnerCsr({
      csrPem: parsed.data.csr,
      runnerId,
      runnerCa: deps.pki.runnerCa,
      clock,
      lifetimeMs: deps.certLifetimeMs,
    })
    reply = {
      type: 'joined',
      cert,
      runnerCa: deps.pki.runnerCa.certPem,
      edgeCa: deps.pki.edgeCa.certPem,
      runnerId,
    }
    outcome = { ok: true, runnerId, serial: new X509Certificate(cert).serialNumber }
  } catch (err) {
    // Typed messages hold no secrets; anything else is reported without its text.
    const e = isHopgateError(err) ? err : new HopgateError('HOPGATE_ERR_JOIN_INTERNAL')
    reply = { type: 'error', code: e.code, message: e.message.slice(0, 1024) }
    outcome = { ok: false, code: e.code }
  }
  finishSocket(socket, encodeMessage(reply), clock, timeoutMs)
  return outcome
}

/** Ends after the reply, discarding anything still arriving, and destroys a peer that lingers. */
function finishSocket(socket: TLSSocket, reply: Buffer, clock: Clock, graceMs: number): void {
  if (socket.destroyed) return
  const timer = clock.setTimeout(() => socket.destroy(), graceMs)
  socket.once('close', () => clock.clearTimeout(timer))
  socket.on('data', () => undefined)
  socket.resume()
  socket.end(reply)
}

/**
 * Checks the edge's presented chain with Node's crypto: it must contain the CA whose SHA-256
 * equals the pin, every link must be issued and signed by the next, and all must be valid now.
 * No host name check: the pinned CA signs only edge certificates, whatever name the agent used.
 */
export function verifyPinnedEdge(socket: TLSSocket, pin: string, now: number): X509Certificate {
  const untrusted = (detail: string, cause?: unknown): HopgateError =>
    new HopgateError('HOPGATE_ERR_JOIN_EDGE_UNTRUSTED', detail, { cause })
  const chain: X509Certificate[] = []
  let link = socket.getPeerCertificate(true)
  while (link?.raw && chain.length < 8) {
    chain.push(new X509Certificate(link.raw))
    if (link.issuerCertificate === link) break
    link = link.issuerCertificate
  }
  const anchor = chain.findIndex((c) => fingerprintOf(c).base64url === pin)
  if (chain.length === 0) throw untrusted('no server certificate')
  if (anchor < 1) throw untrusted('the edge did not present the pinned CA above its certificate')
  try {
    assertLeafUsage(chain[0]!, EKU_SERVER_AUTH)
    for (let i = 0; i <= anchor; i++) {
      const cert = chain[i]!
      assertValidAt(cert, now)
      if (i > 0 && !cert.ca) throw untrusted('an issuer in the chain is not a CA')
      if (i < anchor) assertIssuedBy(cert, chain[i + 1]!)
    }
  } catch (err) {
    throw isHopgateError(err, 'HOPGATE_ERR_JOIN_EDGE_UNTRUSTED')
      ? err
      : untrusted((err as Error).message, err)
  }
  return chain[anchor]!
}

export interface RunnerIdentity {
  keyPem: string
  certPem: string
  runnerCaPem: string
  edgeCaPem: string
  runnerId: string
}

export interface JoinOptions {
  host: string
  port: number
  token: string
  /** Whole exchange, connect included. @default 15000 */
  timeoutMs?: number
  /** Wall clock (epoch ms) for validity checks, and the deadline's timers. @default wallClock */
  clock?: Clock
}

export async function joinOverTls(opts: JoinOptions): Promise<RunnerIdentity> {
  const clock = opts.clock ?? wallClock
  const timeoutMs = opts.timeoutMs ?? 15_000
  const pin = parseJoinToken(opts.token).edgeCaFingerprint
  const { keyPem, csrPem } = createRunnerKeyAndCsr()
  const socket = connect({
    host: opts.host,
    port: opts.port,
    servername: isIP(opts.host) ? undefined : opts.host,
    ALPNProtocols: [JOIN_ALPN],
    minVersion: 'TLSv1.3',
    maxVersion: 'TLSv1.3',
    // Trust is decided below against the pinned CA; the default store knows nothing of it.
    rejectUnauthorized: false,
  })
  socket.on('error', () => undefined) // failures surface through the promise below
  let timer: ReturnType<Clock['setTimeout']> | undefined
  try {
    const reply = await new Promise<unknown>((resolve, reject) => {
      timer = clock.setTimeout(
        () => reject(new HopgateError('HOPGATE_ERR_JOIN_TIMEOUT')),
        timeoutMs,
      )
      const onError = (err: Error): void =>
        reject(new HopgateError('HOPGATE_ERR_JOIN_CONNECTION_FAILED', err.message, { cause: err }))
      socket.once('error', onError)
      socket.once('close', () => reject(new HopgateError('HOPGATE_ERR_JOIN_CONNECTION_FAILED')))
      socket.once('secureConnect', () => {
        try {
          if (socket.alpnProtocol !== JOIN_ALPN)
            throw new HopgateError('HOPGATE_ERR_JOIN_ALPN_MISMATCH')
          verifyPinnedEdge(socket, pin, wallNow(clock))
        } catch (err) {
          reject(err instanceof Error ? err : new Error(String(err)))
          return
        }
        socket.off('error', onError)
        socket.write(
          encodeMessage({ type: 'join', version: JOIN_VERSION, token: opts.token, csr: csrPem }),
        )
        readOneMessage(socket, { clock, timeoutMs }).then(resolve, reject)
      })
    })
    return checkReply(reply, keyPem, pin, wallNow(clock))
  } finally {
    if (timer !== undefined) clock.clearTimeout(timer)
    socket.destroy()
  }
}

/** The edge's answer is checked too: a cert for our key, from the runner CA, naming the runner. */
function checkReply(raw: unknown, keyPem: string, pin: string, now: number): RunnerIdentity {
  const parsed = JoinReplySchema.safeParse(raw)
  if (!parsed.success) throw new HopgateError('HOPGATE_ERR_JOIN_BAD_MESSAGE', 'not a join reply')
  const reply = parsed.data
  if (reply.type === 'error') {
    const known = reply.code in ERROR_CATALOG && /^HOPGATE_ERR_(JOIN|PKI)_/.test(reply.code)
    // The edge was verified against the pin, but its text still goes to a terminal: no controls.
    const detail = `edge says: ${reply.message.replace(/[^\x20-\x7e]/g, '?').slice(0, 300)}`
    if (known) throw new HopgateError(reply.code as ErrorCode, detail)
    throw new HopgateError('HOPGATE_ERR_JOIN_REFUSED', reply.code.replace(/[^A-Z0-9_]/g, ''))
  }
  try {
    if (fingerprintOf(reply.edgeCa).base64url !== pin)
      throw new Error('edge CA is not the pinned one')
    const cert = new X509Certificate(reply.cert)
    if (!cert.checkPrivateKey(createPrivateKey(keyPem))) throw new Error('cert is not for our key')
    const runnerId = runnerIdFromCert(cert, new X509Certificate(reply.runnerCa), now)
    if (runnerId !== reply.runnerId) throw new Error('cert names another runner')
    return {
      keyPem,
      certPem: reply.cert,
      runnerCaPem: reply.runnerCa,
      edgeCaPem: reply.edgeCa,
      runnerId,
    }
  } catch (err) {
    throw new HopgateError('HOPGATE_ERR_JOIN_BAD_MESSAGE', (err as Error).message, { cause: err })
  }
}

/** Writes the identity (replacing an older one, as renewal will); the key 0600. */
export async function saveRunnerIdentity(stateDir: string, id: RunnerIdentity): Promise<void> {
  await ensurePrivateDir(stateDir)
  await ensurePrivateDir(agentPath(stateDir, ''))
  await writeFileAtomic(agentPath(stateDir, 'runner.key'), id.keyPem, { mode: 0o600 })
  await writeFileAtomic(agentPath(stateDir, 'runner.crt'), id.certPem, { mode: 0o644 })
  await writeFileAtomic(agentPath(stateDir, 'runner-ca.crt'), id.runnerCaPem, { mode: 0o644 })
  await writeFileAtomic(agentPath(stateDir, 'edge-ca.crt'), id.edgeCaPem, { mode: 0o644 })
}

/** Reads what saveRunnerIdentity wrote; the runner id is read back from the certificate. */
export async function loadRunnerIdentity(stateDir: string): Promise<RunnerIdentity> {
  try {
    const [keyPem, certPem, runnerCaPem, edgeCaPem] = await Promise.all(
      ['runner.key', 'runner.crt', 'runner-ca.crt', 'edge-ca.crt'].map((f) =>
        readFile(agentPath(stateDir, f), 'utf8'),
      ),
    )
    const cert = new X509Certificate(certPem!)
    if (!cert.checkPrivateKey(createPrivateKey(keyPem!))) throw new Error('key does not match cert')
    const runnerId = hopgateIdOf(cert, 'runner')
    return {
      keyPem: keyPem!,
      certPem: certPem!,
      runnerCaPem: runnerCaPem!,
      edgeCaPem: edgeCaPem!,
      runnerId,
    }
  } catch (err) {
    throw new HopgateError(
      'HOPGATE_ERR_PKI_STATE_INVALID',
      `runner identity: ${(err as Error).message}`,
      {
        cause: err,
      },
    )
  }
}
