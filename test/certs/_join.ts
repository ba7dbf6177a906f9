// Fixtures for the enrollment tests: a loopback edge that runs serveJoin per connection and
// reports each outcome, a raw client for hand-made (hostile) messages, and a per-test setup
// with its own token store and deny list over a shared PKI.
import tls from 'node:tls'
import type { AddressInfo } from 'node:net'
import { serveJoin, type JoinOutcome } from '../../certs/enroll.js'
import type { Pki } from '../../certs/pki.js'
import { RevocationList } from '../../certs/revocation.js'
import { wallClock } from '../../certs/state.js'
import { FileTokenStore, createJoinToken, type TokenStore } from '../../certs/tokens.js'
import { JOIN_ALPN, TUNNEL_ALPN, readOneMessage } from '../../certs/wire.js'
import type { Clock } from '../../shared/clock.js'
import type { ErrorCode } from '../../shared/errors.js'
import { tempStateDir, type Teardown } from './_helpers.js'

export interface JoinServer {
  port: number
  /** Resolves with serveJoin's outcome for the next connection (in order of completion). */
  next(): Promise<JoinOutcome>
  /** Resolves once serveJoin has been entered for `n` connections in all. */
  whenStarted(n: number): Promise<void>
}

export async function joinServer(
  t: Teardown,
  opts: {
    pki: Pki
    tokens: TokenStore
    clock?: Clock
    alpn?: string[] | null
    revocation?: RevocationList
  },
): Promise<JoinServer> {
  const outcomes: JoinOutcome[] = []
  const waiting: Array<(o: JoinOutcome) => void> = []
  const starts: Array<() => void> = []
  const deliver = (o: JoinOutcome): void => {
    const w = waiting.shift()
    if (w) w(o)
    else outcomes.push(o)
  }
  let startedCount = 0
  const whenStarted = (n: number): Promise<void> =>
    startedCount >= n
      ? Promise.resolve()
      : new Promise<void>((resolve) => starts.push(() => void whenStarted(n).then(resolve)))
  const server = tls.createServer(
    {
      cert: opts.pki.edgeServer.chainPem,
      key: opts.pki.edgeServer.keyPem,
      requestCert: true,
      rejectUnauthorized: false,
      minVersion: 'TLSv1.3',
      ...(opts.alpn === null ? {} : { ALPNProtocols: opts.alpn ?? [TUNNEL_ALPN, JOIN_ALPN] }),
    },
    (socket) => {
      const done = serveJoin(socket, {
        pki: opts.pki,
        tokens: opts.tokens,
        clock: opts.clock,
        revocation: opts.revocation,
      })
      startedCount++
      for (const wake of starts.splice(0)) wake()
      void done.then(deliver)
    },
  )
  // A client that hangs up right after its handshake can leave the server mid-handshake: then
  // serveJoin never runs, and the outcome is the handshake's error.
  server.on('tlsClientError', () => deliver({ ok: false, code: 'TLS_CLIENT_ERROR' as ErrorCode }))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return {
    port: (server.address() as AddressInfo).port,
    next: () => {
      const o = outcomes.shift()
      return o ? Promise.resolve(o) : new Promise((resolve) => waiting.push(resolve))
    },
    whenStarted,
  }
}

/** A hand-rolled client: sends `payload` raw after the handshake and reads one reply. */
export function rawJoin(port: number, payload?: Buffer): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      ALPNProtocols: [JOIN_ALPN],
      rejectUnauthorized: false,
      minVersion: 'TLSv1.3',
    })
    socket.on('error', () => undefined)
    socket.once('secureConnect', () => {
      if (payload) socket.write(payload)
      readOneMessage(socket, { clock: wallClock, timeoutMs: 10_000 })
        .then(resolve, reject)
        .finally(() => socket.destroy())
    })
  })
}

export const frame = (body: string): Buffer => {
  const b = Buffer.from(body)
  const head = Buffer.alloc(4)
  head.writeUInt32BE(b.length)
  return Buffer.concat([head, b])
}

/** A fresh state dir (tokens, deny list) per test; the PKI is shared and only read. */
export async function setup(
  t: Teardown,
  pkiOnce: () => Promise<Pki>,
  opts: { clock?: Clock; alpn?: string[] | null } = {},
) {
  const dir = await tempStateDir(t)
  const pki = await pkiOnce()
  const tokens = new FileTokenStore(dir)
  const revocation = await RevocationList.open(dir)
  const server = await joinServer(t, { pki, tokens, revocation, ...opts })
  const token = (runnerId = 'runner-1', clock: Clock = opts.clock ?? wallClock, ttlMs = 900_000) =>
    createJoinToken(tokens, {
      runnerId,
      ttlMs,
      edgeCaFingerprint: pki.edgeCa.fingerprint.base64url,
      clock,
    })
  return { dir, pki, tokens, revocation, server, token }
}
