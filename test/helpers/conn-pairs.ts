// The transports every yamux and tunnel test runs over: an in-memory pair, loopback TCP and
// mutual TLS 1.3 on loopback. `a` is the dialing (client) side, `b` the accepting side.
import net from 'node:net'
import tls from 'node:tls'
import type { Duplex } from 'node:stream'
import { once } from 'node:events'
import { duplexPair } from './duplex-pair.js'
import { makeTestPki } from '../../certs/testing.js'

export interface ConnPair {
  a: Duplex
  b: Duplex
  close(): Promise<void>
}

export interface ConnPairMaker {
  name: 'memory' | 'tcp' | 'tls'
  make(): Promise<ConnPair>
}

async function tcpPair(): Promise<ConnPair> {
  const server = net.createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as net.AddressInfo
  const accepted = once(server, 'connection') as Promise<[net.Socket]>
  const a = net.connect(port, '127.0.0.1')
  await once(a, 'connect')
  const [b] = await accepted
  a.setNoDelay(true)
  b.setNoDelay(true)
  return { a, b, close: () => closeAll(server, a, b) }
}

async function tlsPair(): Promise<ConnPair> {
  const pki = makeTestPki()
  const server = tls.createServer({
    key: pki.serverKey,
    cert: pki.serverCert,
    ca: pki.caCert,
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.3',
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as net.AddressInfo
  const accepted = once(server, 'secureConnection') as Promise<[tls.TLSSocket]>
  const a = tls.connect({
    host: '127.0.0.1',
    port,
    key: pki.clientKey,
    cert: pki.clientCert,
    ca: pki.caCert,
    minVersion: 'TLSv1.3',
  })
  await once(a, 'secureConnect')
  const [b] = await accepted
  a.setNoDelay(true)
  b.setNoDelay(true)
  return { a, b, close: () => closeAll(server, a, b) }
}

async function closeAll(server: net.Server, a: Duplex, b: Duplex): Promise<void> {
  a.destroy()
  b.destroy()
  await new Promise<void>((resolve) => server.close(() => resolve()))
}

export const connPairs: ConnPairMaker[] = [
  {
    name: 'memory',
    make: async () => {
      const [a, b] = duplexPair()
      return {
        a,
        b,
        close: async () => {
          a.destroy()
          b.destroy()
        },
      }
    },
  },
  { name: 'tcp', make: tcpPair },
  { name: 'tls', make: tlsPair },
]
