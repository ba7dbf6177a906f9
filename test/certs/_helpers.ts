// Fixtures for the certs tests: temp state dirs removed in teardown, a wall ManualClock, runner
// certs issued through the real CSR path, and a loopback mTLS server that reports, per
// connection, the identity certs/identity.ts found or the typed code it refused with.
import { X509Certificate } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import tls from 'node:tls'
import type { AddressInfo } from 'node:net'
import { ManualClock } from '../../shared/clock.js'
import { isHopgateError } from '../../shared/errors.js'
import { createRunnerKeyAndCsr, signRunnerCsr } from '../../certs/csr.js'
import { identifyTlsPeer, type IdentityKind } from '../../certs/identity.js'
import { initCa, type Pki } from '../../certs/pki.js'
import { TUNNEL_ALPN } from '../../certs/wire.js'

export interface Teardown {
  teardown(fn: () => unknown): void
}

export async function tempStateDir(t: Teardown): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'hopgate-certs-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

/** A ManualClock whose now() reads as wall time (epoch ms), as certs/ requires. */
export function wallManualClock(at = Date.now()): ManualClock {
  const clock = new ManualClock()
  clock.advance(at)
  return clock
}

export interface Issued {
  certPem: string
  keyPem: string
}

export function issueRunner(
  pki: Pick<Pki, 'runnerCa'>,
  runnerId: string,
  opts: { at?: number; lifetimeMs?: number } = {},
): Issued {
  const { keyPem, csrPem } = createRunnerKeyAndCsr()
  const certPem = signRunnerCsr({
    csrPem,
    runnerId,
    runnerCa: pki.runnerCa,
    clock: wallManualClock(opts.at),
    lifetimeMs: opts.lifetimeMs,
  })
  return { certPem, keyPem }
}

export type PeerVerdict = { id: string; serial: string } | { code: string }

export interface IdentityServer {
  port: number
  /** Connects with `client` (or no cert) and resolves with the server's verdict. */
  attempt(client?: Issued): Promise<PeerVerdict>
  close(): Promise<void>
}

/**
 * The edge's tunnel-port posture: TLS 1.3, client certs requested but judged by identifyTlsPeer
 * so each refusal carries its typed code (which the server writes back for the test to read).
 */
export async function identityServer(
  t: Teardown,
  opts: {
    pki: Pki
    kind?: IdentityKind
    revocation?: { isRevoked(id: string, serial?: string): boolean }
  },
): Promise<IdentityServer> {
  const kind = opts.kind ?? 'runner'
  const caPem = kind === 'runner' ? opts.pki.runnerCa.certPem : opts.pki.edgeCa.certPem
  const ca = new X509Certificate(caPem)
  const server = tls.createServer(
    {
      cert: opts.pki.edgeServer.chainPem,
      key: opts.pki.edgeServer.keyPem,
      ca: [caPem],
      requestCert: true,
      rejectUnauthorized: false,
      minVersion: 'TLSv1.3',
      ALPNProtocols: [TUNNEL_ALPN],
    },
    (socket) => {
      let verdict: PeerVerdict
      try {
        const peer = identifyTlsPeer(socket, {
          kind,
          ca,
          now: Date.now(),
          revocation: opts.revocation,
        })
        verdict = { id: peer.id, serial: peer.serial }
      } catch (err) {
        verdict = { code: isHopgateError(err) ? err.code : `untyped: ${String(err)}` }
      }
      socket.on('error', () => undefined)
      socket.end(JSON.stringify(verdict))
    },
  )
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  const close = (): Promise<void> => new Promise((resolve) => server.close(() => resolve()))
  t.teardown(close)
  return {
    port,
    close,
    attempt: (client) =>
      new Promise<PeerVerdict>((resolve, reject) => {
        const socket = tls.connect({
          host: '127.0.0.1',
          port,
          ca: [opts.pki.edgeCa.certPem],
          cert: client?.certPem,
          key: client?.keyPem,
          ALPNProtocols: [TUNNEL_ALPN],
          minVersion: 'TLSv1.3',
        })
        const chunks: Buffer[] = []
        socket.on('data', (c: Buffer) => chunks.push(c))
        socket.on('error', reject)
        socket.on('end', () => {
          try {
            resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as PeerVerdict)
          } catch (err) {
            reject(err instanceof Error ? err : new Error(String(err)))
          }
        })
      }),
  }
}

/**
 * One PKI per test file for tests that only read it: initCa makes four RSA keys, and key
 * generation is most of this suite's time. Its state dir is removed when `t` ends.
 */
export function sharedPki(
  t: Teardown,
  opts: Parameters<typeof initCa>[1] = {},
): () => Promise<Pki> {
  let made: Promise<Pki> | undefined
  return () => (made ??= tempStateDir(t).then(async (dir) => (await initCa(dir, opts)).pki))
}
