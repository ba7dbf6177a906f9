// Middle process: a hopgate edge as `hopgate edge` assembles it (test/e2e/tunnel.test.ts is the
// model): a fresh CA in a throwaway state dir, a join token for one runner, the tunnel listener and
// one raw TCP ingress mapping to the bench target's port through the project.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { initCa } from '../../certs/pki.js'
import { createJoinToken, FileTokenStore } from '../../certs/tokens.js'
import { wallClock } from '../../certs/state.js'
import { startEdge, type Edge } from '../../edge/edge.js'
import { parseTcpMapping } from '../../edge/ingress/tcp.js'
import { serve } from './serve.js'

const stateDir = mkdtempSync(join(tmpdir(), 'hopgate-bench-edge-'))
let edge: Edge | undefined

serve(
  'edge',
  async (req) => {
    if (req.cmd === 'edge') {
      const { pki } = await initCa(stateDir, { edgeId: 'bench-edge' })
      const token = await createJoinToken(new FileTokenStore(stateDir), {
        runnerId: req.runnerId,
        ttlMs: 15 * 60_000,
        edgeCaFingerprint: pki.edgeCa.fingerprint.base64url,
        clock: wallClock,
      })
      edge = await startEdge({
        stateDir,
        tunnelPort: 0,
        tcp: [parseTcpMapping(`127.0.0.1:0=${req.project}:${req.targetPort}`)],
        heartbeatIntervalMs: 5000,
      })
      const port = edge.tcp[0]?.address.port
      return { port, tunnelPort: edge.tunnel.address.port, token }
    }
    if (req.cmd === 'sessions') {
      if (!edge) throw new Error('edge not started')
      return { sessions: edge.sessions.sessions(req.runnerId).length }
    }
    throw new Error(`edge: unknown command ${req.cmd}`)
  },
  () => rmSync(stateDir, { recursive: true, force: true }),
)
