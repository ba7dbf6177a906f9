// Metrics of many edges: forwarding (the ingress side trying peers, the receiving side relaying)
// and the graceful drain. Definitions only, plus codeLabel-style folding of outcomes into closed
// sets; the forwarder, the peer listener and drain.ts record into them. No label ever names an
// edge, a runner or an address (docs/METRICS.md lists every name; a test checks).
import type { MetricDef } from '../../shared/metrics.js'

export const EDGE_CLUSTER_METRICS = {
  forwardStreams: {
    name: 'hopgate_edge_forward_streams_total',
    help: 'User streams forwarded to a peer edge (this edge held no session), by result: ok or the typed error code',
    labelNames: ['result'],
  },
  forwardAttempts: {
    name: 'hopgate_edge_forward_attempts_total',
    help: 'Peer edges tried for forwarded streams, by outcome: answered, refused, link_failed',
    labelNames: ['outcome'],
  },
  peerStreams: {
    name: 'hopgate_edge_peer_streams_total',
    help: 'Streams other edges forwarded here, by result: relayed, no_session, hop_limit, bad_preamble',
    labelNames: ['result'],
  },
  peerInflight: {
    name: 'hopgate_edge_peer_streams_inflight',
    help: 'Streams from other edges being relayed now',
  },
  draining: {
    name: 'hopgate_edge_draining',
    help: '1 from the start of a graceful drain, else 0',
  },
  drainInflight: {
    name: 'hopgate_edge_drain_inflight',
    help: 'User connections and forwarded streams the drain is waiting for',
  },
  drainCut: {
    name: 'hopgate_edge_drain_cut_total',
    help: 'Connections and streams still open at the grace deadline, closed by the drain',
  },
} as const satisfies Record<string, MetricDef>
