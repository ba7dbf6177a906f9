// Forwarding and drain metrics on real edges (two in one process over loopback, one shared route
// store, one agent holding a session to edge-1 only), read back from the Prometheus text each
// edge would serve at /metrics: forwarded streams and tries on the ingress edge, relayed streams
// on the receiving edge, and the drain's state, in-flight count and cut count.
import t from 'tap'
import net from 'node:net'
import { once } from 'node:events'
import { systemClock } from '../../shared/clock.js'
import { PromMetrics } from '../../shared/metrics-prom.js'
import { EmbeddedStore } from '../../edge/routing/embedded-store.js'
import { MemoryEdgeRegistry } from '../../edge/cluster/registry.js'
import { startEdge, type Edge } from '../../edge/edge.js'
import { startAgent } from '../../agent/agent.js'
import { parseTcpMapping } from '../../edge/ingress/tcp.js'
import { encodeOpenHeader } from '../../shared/tunnel/open-header.js'
import { tempDir } from '../helpers/echo.js'
import { clusterStateDirs, enroll, report, roundTrip, until } from './helpers.js'
import type { TapTest } from '../helpers/yamux-pair.js'

const P1 = '11111111-1111-4111-8111-111111111111'

/** One sample's value from Prometheus text (0 when the series is absent). */
async function sample(m: PromMetrics, name: string, labels = ''): Promise<number> {
  const { body } = await m.render()
  const key = labels ? `${name}{${labels}}` : name
  const line = body.split('\n').find((l) => l.startsWith(`${key} `))
  return line ? Number(line.slice(key.length + 1)) : 0
}

/**
 * `A:` + the echo, like helpers.taggedServer, but its sockets are destroyed at teardown: the
 * agent's target socket of the stream the drain cut was seen to outlive agent.close() (noted).
 */
async function echoServer(tt: TapTest): Promise<number> {
  const sockets = new Set<net.Socket>()
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s)
    s.once('close', () => sockets.delete(s))
    s.on('error', () => {})
    s.write('A:')
    s.pipe(s)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  tt.teardown(async () => {
    for (const s of sockets) s.destroy()
    await new Promise<void>((r) => server.close(() => r()))
  })
  return (server.address() as net.AddressInfo).port
}

t.test('forwarding and drain metrics', async (tt) => {
  const dirs = await clusterStateDirs(tt, ['edge-1', 'edge-2'])
  const store = await EmbeddedStore.open({
    stateDir: await tempDir(tt, 'routes'),
    clock: systemClock,
  })
  tt.teardown(() => store.close())
  const registry = new MemoryEdgeRegistry(systemClock)
  const port = await echoServer(tt)
  const metrics = [new PromMetrics(), new PromMetrics()] as const
  const edges: Edge[] = []
  for (const [i, dir] of dirs.entries()) {
    const edge = await startEdge({
      stateDir: dir,
      tunnelPort: 0,
      routeStore: store,
      tcp: [parseTcpMapping(`127.0.0.1:0=${P1}:${port}`)],
      heartbeatIntervalMs: 200,
      cluster: { registry, peerPort: 0, refreshIntervalMs: 100 },
      drain: { gracePeriodMs: 1000, lameDuckMs: 100 },
      metrics: metrics[i]!,
    })
    tt.teardown(() => edge.close())
    edges.push(edge)
  }
  const [e1, e2] = edges as [Edge, Edge]
  const [m1, m2] = metrics
  const dir = await enroll(tt, dirs[0]!, e1.tunnel.address.port, 'runner-a')
  const agent = await startAgent({
    stateDir: dir,
    edges: [`127.0.0.1:${e1.tunnel.address.port}`],
    slots: 1,
    projects: { [P1]: { host: '127.0.0.1', allowedPorts: [port] } },
    report,
  })
  tt.teardown(() => agent.close())
  await until(
    async () => (await store.getRunner('runner-a'))?.edges.join() === 'edge-1',
    'runner-a recorded on edge-1 only',
  )
  const e2tcp = e2.tcp[0]!.address.port
  await until(async () => (await roundTrip(e2tcp, 'w').catch(() => '')) === 'A:w', 'forwarding')

  tt.equal(await sample(m1, 'hopgate_edge_draining'), 0, 'hopgate_edge_draining 0 before a drain')
  const ok = (): Promise<number> => sample(m2, 'hopgate_edge_forward_streams_total', 'result="ok"')
  const answered = (): Promise<number> =>
    sample(m2, 'hopgate_edge_forward_attempts_total', 'outcome="answered"')
  const relayed = (): Promise<number> =>
    sample(m1, 'hopgate_edge_peer_streams_total', 'result="relayed"')
  const before = [await ok(), await answered(), await relayed()]
  tt.ok(before[0]! >= 1, 'edge-2 counted its forwarded streams')
  tt.equal(await roundTrip(e2tcp, 'x'), 'A:x', 'a connection through edge-2 (no session there)')
  tt.same(
    [await ok(), await answered(), await relayed()],
    before.map((v) => v + 1),
    'one more forwarded stream (ok), one more answered try, one more relayed on edge-1',
  )
  tt.equal(
    await sample(m1, 'hopgate_edge_forward_streams_total', 'result="ok"'),
    0,
    'edge-1 forwarded nothing',
  )

  // A held forwarded connection is in flight on edge-1's peer listener.
  const held = net.connect(e2tcp, '127.0.0.1')
  held.on('error', () => {})
  held.write('h')
  await once(held, 'data')
  tt.equal(
    await sample(m1, 'hopgate_edge_peer_streams_inflight'),
    1,
    'one relayed stream in flight',
  )
  held.end()
  await until(
    async () => (await sample(m1, 'hopgate_edge_peer_streams_inflight')) === 0,
    'relay done',
  )
  tt.pass('the in-flight gauge returns to 0')

  // No edge holds runner-zz: edge-1 refuses, edge-2 runs out of candidates.
  const header = encodeOpenHeader({
    project: P1,
    service: 'port',
    port,
    routeEpoch: 1,
    clientAddress: '192.0.2.1:1',
    traceId: 'metrics',
  })
  await tt.rejects(e2.cluster!.forwarder.forward({ runner: 'runner-zz', header }), {
    code: 'HOPGATE_ERR_PEER_UNAVAILABLE',
  })
  tt.equal(
    await sample(m2, 'hopgate_edge_forward_streams_total', 'result="HOPGATE_ERR_PEER_UNAVAILABLE"'),
    1,
    'the failed forward is counted by its code',
  )
  tt.equal(
    await sample(m2, 'hopgate_edge_forward_attempts_total', 'outcome="refused"'),
    1,
    'the peer that refused is counted as a refused try',
  )
  tt.equal(
    await sample(m1, 'hopgate_edge_peer_streams_total', 'result="no_session"'),
    1,
    'edge-1 counted its no_session refusal',
  )

  // Drain edge-1 with a direct connection held past the grace period: it is cut and counted.
  const stuck = net.connect(e1.tcp[0]!.address.port, '127.0.0.1')
  stuck.on('error', () => {})
  stuck.write('s')
  await once(stuck, 'data')
  const drained = e1.drain()
  await until(async () => (await sample(m1, 'hopgate_edge_draining')) === 1, 'draining gauge')
  tt.pass('hopgate_edge_draining turns 1 when the drain starts')
  const reportOut = await drained
  stuck.destroy()
  tt.equal(reportOut.inflightCut, 1, 'the drain cut the held connection')
  tt.equal(await sample(m1, 'hopgate_edge_drain_cut_total'), 1, 'hopgate_edge_drain_cut_total 1')
  tt.equal(
    await sample(m1, 'hopgate_edge_drain_inflight'),
    1,
    'the last in-flight count it waited on',
  )
  tt.equal(await sample(m2, 'hopgate_edge_draining'), 0, 'edge-2 is not draining')
})
