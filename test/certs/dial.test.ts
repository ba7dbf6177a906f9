// certs/dial.ts over real TLS 1.3 on 127.0.0.1: the dial both edges (peer link, direct connector)
// and the agent use. It hands over a verified socket, or rejects with the bare cause and leaves no
// socket open: a refusal by `verify`, no ALPN selected, a chain from the wrong CA, a deadline, an
// abort, a bad address.
import t from 'tap'
import net from 'node:net'
import tls from 'node:tls'
import { once } from 'node:events'
import { X509Certificate } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import { dialMutualTls, type MutualTlsDialOptions } from '../../certs/dial.js'
import { assertTlsServerPeer } from '../../certs/identity.js'
import { PEER_ALPN } from '../../certs/wire.js'
import type { Pki } from '../../certs/pki.js'
import { issueRunner, sharedPki, type Issued, type Teardown } from './_helpers.js'

const pkiOnce = sharedPki(t)

/** A TLS server like an edge's peer port: edge CA on both sides, answers "hi" to who got in. */
async function server(
  t: Teardown,
  pki: Pki,
  serverCert: Issued = { certPem: pki.edgeServer.chainPem, keyPem: pki.edgeServer.keyPem },
  /** null: the server offers no protocol, so none is selected. */
  alpn: string[] | null = [PEER_ALPN],
): Promise<{ address: string; closed: () => Promise<unknown> }> {
  const closes: Promise<unknown>[] = []
  const srv = tls.createServer(
    {
      cert: serverCert.certPem,
      key: serverCert.keyPem,
      ca: [pki.edgeCa.certPem],
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.3',
      ...(alpn && { ALPNProtocols: alpn }),
    },
    (s) => {
      s.on('error', () => undefined)
      closes.push(once(s, 'close'))
      s.write('hi')
    },
  )
  srv.on('tlsClientError', () => undefined)
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => srv.close(() => resolve())))
  return {
    address: `127.0.0.1:${(srv.address() as AddressInfo).port}`,
    closed: () => Promise.all(closes),
  }
}

/** Accepts TCP and never speaks TLS: only a deadline or an abort ends a dial to it. */
async function silent(t: Teardown): Promise<{ address: string; accepted: Promise<net.Socket> }> {
  const srv = net.createServer()
  // Flowing, so that our side closing shows up here as 'end'.
  const accepted = once(srv, 'connection').then(([s]) => (s as net.Socket).resume())
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    srv.close()
    return accepted.then(
      (s) => s.destroy(),
      () => undefined,
    )
  })
  return { address: `127.0.0.1:${(srv.address() as AddressInfo).port}`, accepted }
}

function edgeDial(pki: Pki, over: Partial<MutualTlsDialOptions>): MutualTlsDialOptions {
  return {
    address: '127.0.0.1:1',
    keyPem: pki.edgeClient.keyPem,
    certPem: pki.edgeClient.chainPem,
    caPem: pki.edgeCa.certPem,
    alpn: PEER_ALPN,
    timeoutMs: 5000,
    ...over,
  }
}

t.test('hands over a socket that verify accepted, ALPN selected', async (t) => {
  const pki = await pkiOnce()
  const edgeCa = new X509Certificate(pki.edgeCa.certPem)
  const { address } = await server(t, pki)
  let verified = 0
  const socket = await dialMutualTls(
    edgeDial(pki, {
      address,
      verify: (s) => {
        assertTlsServerPeer(s, edgeCa, Date.now())
        verified++
      },
    }),
  )
  t.teardown(() => socket.destroy())
  t.equal(verified, 1, 'verify ran once')
  t.equal(socket.alpnProtocol, PEER_ALPN)
  t.equal(socket.getProtocol(), 'TLSv1.3')
  const [data] = (await once(socket, 'data')) as [Buffer]
  t.equal(data.toString(), 'hi', 'the server let our client cert in')
})

t.test('what verify throws is the rejection, and the socket is closed', async (t) => {
  const pki = await pkiOnce()
  const srv = await server(t, pki)
  const refusal = new Error('not this one')
  await t.rejects(
    dialMutualTls(
      edgeDial(pki, {
        address: srv.address,
        verify: () => {
          throw refusal
        },
      }),
    ),
    refusal,
  )
  await srv.closed()
  t.pass('the server saw the connection close')
})

t.test('a server with our chain that selects no protocol is refused, before verify', async (t) => {
  const pki = await pkiOnce()
  const srv = await server(t, pki, undefined, null)
  let verified = 0
  await t.rejects(
    dialMutualTls(edgeDial(pki, { address: srv.address, verify: () => void verified++ })),
    { code: 'HOPGATE_ERR_JOIN_ALPN_MISMATCH' },
  )
  t.equal(verified, 0, 'verify never ran')
  await srv.closed()
  t.pass('the server saw the connection close')
})

t.test('assertTlsServerPeer refuses a server cert from another CA', async (t) => {
  const pki = await pkiOnce()
  // A runner cert carries serverAuth and verifies against the runner CA, but it is no edge.
  const { address } = await server(t, pki, issueRunner(pki, 'runner-a'))
  const edgeCa = new X509Certificate(pki.edgeCa.certPem)
  await t.rejects(
    dialMutualTls(
      edgeDial(pki, {
        address,
        caPem: pki.runnerCa.certPem,
        verify: (s) => assertTlsServerPeer(s, edgeCa, Date.now()),
      }),
    ),
    { code: 'HOPGATE_ERR_PKI_WRONG_ISSUER' },
  )
})

t.test(
  "a chain that does not end in caPem fails the handshake with the socket's error",
  async (t) => {
    const pki = await pkiOnce()
    const { address } = await server(t, pki)
    const err = await dialMutualTls(edgeDial(pki, { address, caPem: pki.runnerCa.certPem })).then(
      () => undefined,
      (e: unknown) => e as NodeJS.ErrnoException,
    )
    t.ok(err, 'rejected')
    t.type(err?.code, 'string', 'with the TLS error code')
    t.notMatch(String(err?.code), /^HOPGATE_ERR_/, 'not wrapped: the caller picks the typed error')
  },
)

t.test('a peer that never answers: the deadline rejects and closes the socket', async (t) => {
  const pki = await pkiOnce()
  const { address, accepted } = await silent(t)
  await t.rejects(dialMutualTls(edgeDial(pki, { address, timeoutMs: 100 })), {
    message: `connect to ${address} timed out`,
  })
  await once(await accepted, 'end')
  t.pass('the silent server saw our side close')
})

t.test('the AbortSignal ends a dial, before and during', async (t) => {
  const pki = await pkiOnce()
  const { address, accepted } = await silent(t)
  await t.rejects(
    dialMutualTls(edgeDial(pki, { address, signal: AbortSignal.abort() })),
    { code: 'HOPGATE_ERR_ABORTED' },
    'already aborted',
  )
  const ac = new AbortController()
  const dial = dialMutualTls(edgeDial(pki, { address, signal: ac.signal }))
  const peer = await accepted
  ac.abort()
  await t.rejects(dial, { code: 'HOPGATE_ERR_ABORTED' }, 'aborted mid-handshake')
  await once(peer, 'end')
  t.pass('the silent server saw our side close')
})

t.test('an address without a port is a config error', async (t) => {
  const pki = await pkiOnce()
  await t.rejects(dialMutualTls(edgeDial(pki, { address: 'edge-1.internal' })), {
    code: 'HOPGATE_ERR_CONFIG_INVALID',
  })
})
