// Middle process for bench/forward.ts: one edge of a two-edge cluster, as `hopgate edge --store
// redis://...` with a cluster registry assembles it. The bench prepares its state dir (both edges
// share the runner CA and the edge CA, as operators copy them) and the Redis store; this process
// starts the edge with a raw TCP ingress to the bench target through the project, its peer
// listener and the Redis edge registry. It mints no token and starts no agent.
import { startEdge, type Edge } from '../../edge/edge.js'
import { parseTcpMapping } from '../../edge/ingress/tcp.js'
import { RedisEdgeRegistry } from '../../edge/cluster/redis-registry.js'
import { systemClock } from '../../shared/clock.js'
import { serve } from './serve.js'

let edge: Edge | undefined
let registry: RedisEdgeRegistry | undefined

serve(
  'cluster-edge',
  async (req) => {
    if (req.cmd === 'cluster-edge') {
      registry = new RedisEdgeRegistry({
        redis: req.redisUrl,
        clock: systemClock,
        prefix: req.keyPrefix,
      })
      edge = await startEdge({
        stateDir: req.stateDir,
        tunnelPort: 0,
        store: req.redisUrl,
        storeKeyPrefix: req.keyPrefix,
        tcp: [parseTcpMapping(`127.0.0.1:0=${req.project}:${req.targetPort}`)],
        heartbeatIntervalMs: 5000,
        cluster: { registry, peerPort: 0, refreshIntervalMs: 100 },
      })
      return { port: edge.tcp[0]!.address.port, tunnelPort: edge.tunnel.address.port }
    }
    if (req.cmd === 'sessions') {
      if (!edge) throw new Error('edge not started')
      const sessions = edge.sessions.sessions(req.runnerId).length
      const peers = edge.cluster!.member.peers().length
      if (req.project === undefined) return { sessions, peers }
      const routed = (await edge.store.getRoute(req.project))?.runner === req.runnerId
      return { sessions, routed, peers }
    }
    throw new Error(`cluster-edge: unknown command ${req.cmd}`)
  },
  () => {
    // Exit handlers run synchronously: the registry lease expires on its own in Redis.
    void edge?.close()
    void registry?.close()
  },
)
