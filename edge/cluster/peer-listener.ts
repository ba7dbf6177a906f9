// The receiving end of the peer link (default port 7445): mutual TLS 1.3 with the edge CA on both
// sides (the dialing edge's client cert names it, urn:hopgate:edge:<id>), ALPN hopgate-peer/1, one
// yamux session per dialing edge. Each stream is one forwarded user connection: read the preamble,
// pick a live local session of the named runner, and relay the rest both ways unchanged (the
// stream-open header out, the agent's status byte and payload back). It never forwards again.
import tls from 'node:tls'
import { X509Certificate } from 'node:crypto'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { Session, type YamuxConfig, type YamuxStream } from '../../shared/yamux/index.js'
import { isHopgateError } from '../../shared/errors.js'
import { bridge } from '../../shared/tunnel/bridge.js'
import { identifyTlsPeer } from '../../certs/identity.js'
import { PEER_ALPN } from '../../certs/wire.js'
import type { Pki } from '../../certs/pki.js'
import type { SessionTable } from '../tunnel/sessions.js'
import { MAX_HOPS, MAX_PREAMBLE_BYTES, PeerStatus, decodePreamble } from './peer-wire.js'
import { noopMetrics, type Metrics } from '../../shared/metrics.js'
import { EDGE_CLUSTER_METRICS } from './metrics.js'

export interface PeerListenerOptions {
  host: string
  port: number
  pki: Pki
  sessions: SessionTable
  yamux?: Partial<YamuxConfig>
  /** The preamble must arrive within this, in ms. @default 5000 */
  preambleTimeoutMs?: number
  onEvent?: (event: string, detail: Record<string, unknown>) => void
  /** Relayed streams by result, and those in flight (edge/cluster/metrics.ts). */
  metrics?: Metrics
}

export interface PeerListener {
  address: AddressInfo
  /** Forwarded streams being relayed now (drain waits for them). */
  readonly inflight: number
  /** Stops taking new peer connections; live links and their streams go on. */
  stopAccepting(): void
  close(): Promise<void>
}

export async function startPeerListener(opts: PeerListenerOptions): Promise<PeerListener> {
  const edgeCa = new X509Certificate(opts.pki.edgeCa.certPem)
  const event = opts.onEvent ?? (() => {})
  const server = tls.createServer({
    key: opts.pki.edgeServer.keyPem,
    cert: opts.pki.edgeServer.chainPem,
    ca: opts.pki.edgeCa.certPem,
    requestCert: true,
    // identifyTlsPeer is the gate, so each refusal is reported with its typed reason.
    rejectUnauthorized: false,
    minVersion: 'TLSv1.3',
    ALPNProtocols: [PEER_ALPN],
  })
  const links = new Set<Session>()
  const sockets = new Set<tls.TLSSocket>()
  let inflight = 0
  const metrics = opts.metrics ?? noopMetrics
  const results = metrics.counter(EDGE_CLUSTER_METRICS.peerStreams)
  const inflightGauge = metrics.gauge(EDGE_CLUSTER_METRICS.peerInflight)
  inflightGauge.set(0)
  server.on('tlsClientError', (err, socket) =>
    event('peer-refused', {
      code: 'HOPGATE_ERR_PKI_TLS_UNVERIFIED',
      remote: socket.remoteAddress,
      err,
    }),
  )
  server.on('secureConnection', (socket) => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    socket.setNoDelay(true)
    let peerEdge: string
    try {
      if (socket.alpnProtocol !== PEER_ALPN) throw new Error(`ALPN ${String(socket.alpnProtocol)}`)
      peerEdge = identifyTlsPeer(socket, { kind: 'edge', ca: edgeCa, now: Date.now() }).id
    } catch (err) {
      event('peer-refused', {
        code: isHopgateError(err) ? err.code : 'HOPGATE_ERR_PKI_BAD_IDENTITY',
        remote: socket.remoteAddress,
        err,
      })
      socket.destroy()
      return
    }
    const link = new Session(socket, {
      role: 'server',
      ...(opts.yamux ? { config: opts.yamux } : {}),
    })
    links.add(link)
    link.once('close', () => links.delete(link))
    link.on('stream', (stream) => {
      // Every forwarded stream is answered with one byte soon (our refusal or the agent's status,
      // relayed): the ACK rides on it, saving the ingress edge a frame and a wake-up per open.
      stream.deferAck()
      inflight++
      inflightGauge.set(inflight)
      let done = false
      const finish = (): void => {
        if (done) return
        done = true
        inflight--
        inflightGauge.set(inflight)
      }
      stream.once('close', finish)
      relay(stream, peerEdge).catch((err: unknown) => {
        event('peer-relay-failed', { peerEdge, err })
        stream.destroy()
      })
    })
  })

  async function relay(stream: YamuxStream, peerEdge: string): Promise<void> {
    stream.on('error', () => {})
    const head = await readPreamble(stream, opts.preambleTimeoutMs ?? 5000)
    if (head === undefined) {
      results.inc({ result: 'bad_preamble' })
      stream.end(Buffer.from([PeerStatus.BadPreamble]))
      return
    }
    const { preamble, rest } = head
    if (preamble.hops > MAX_HOPS) {
      results.inc({ result: 'hop_limit' })
      stream.end(Buffer.from([PeerStatus.HopLimit]))
      return
    }
    const entry = opts.sessions.pick(preamble.runnerId)
    if (!entry) {
      results.inc({ result: 'no_session' })
      stream.end(Buffer.from([PeerStatus.NoSession]))
      return
    }
    let upstream: YamuxStream
    try {
      upstream = entry.session.openStream()
    } catch {
      // The session is going away or at its backlog: the ingress edge tries another holder.
      results.inc({ result: 'no_session' })
      stream.end(Buffer.from([PeerStatus.NoSession]))
      return
    }
    upstream.on('error', () => {})
    if (rest.length > 0) upstream.write(rest)
    bridge(upstream, stream)
    results.inc({ result: 'relayed' })
    stream.resume()
    event('peer-forwarded', { peerEdge, runnerId: preamble.runnerId })
  }

  server.listen(opts.port, opts.host)
  await once(server, 'listening')
  return {
    address: server.address() as AddressInfo,
    get inflight() {
      return inflight
    },
    stopAccepting: () => {
      server.close()
    },
    close: async () => {
      for (const l of links) l.close()
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

/** The preamble and whatever followed it, or undefined if it is malformed, too late or cut off. */
function readPreamble(
  stream: YamuxStream,
  timeoutMs: number,
): Promise<{ preamble: { runnerId: string; hops: number }; rest: Buffer } | undefined> {
  return new Promise((resolve) => {
    let buf = Buffer.alloc(0)
    const done = (
      v: { preamble: { runnerId: string; hops: number }; rest: Buffer } | undefined,
    ) => {
      clearTimeout(timer)
      stream.off('data', onData)
      stream.off('end', onEnd)
      stream.off('close', onEnd)
      stream.pause()
      resolve(v)
    }
    const onData = (chunk: Buffer): void => {
      buf = Buffer.concat([buf, chunk])
      try {
        const got = decodePreamble(buf)
        if (got) return done(got)
        if (buf.length >= MAX_PREAMBLE_BYTES) done(undefined)
      } catch {
        done(undefined)
      }
    }
    const onEnd = (): void => done(undefined)
    const timer = setTimeout(() => done(undefined), timeoutMs)
    timer.unref()
    stream.on('data', onData)
    stream.once('end', onEnd)
    stream.once('close', onEnd)
  })
}
