// Middle process: a hopgate edge as `hopgate edge` assembles it (test/e2e/tunnel.test.ts is the
// model): a fresh CA in a throwaway state dir, a join token for one runner, the tunnel listener,
// one raw TCP ingress mapping to the bench target's port through the project and, for
// bench/ssh.ts, the SSH ingress with one account (key registered, collaborator of the project).
// It does not start the project's sshd: the bench does, trusting the upstream key we report.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { initCa } from '../../certs/pki.js'
import { createJoinToken, FileTokenStore } from '../../certs/tokens.js'
import { wallClock } from '../../certs/state.js'
import { startEdge, type Edge } from '../../edge/edge.js'
import { parseTcpMapping } from '../../edge/ingress/tcp.js'
import { loadEdgeKey } from '../../edge/ssh/host-key.js'
import { fingerprint, parseAuthorizedKey } from '../../edge/ssh/wire.js'
import { serve } from './serve.js'
import type { EdgeSshSetup } from './types.js'

const stateDir = mkdtempSync(join(tmpdir(), 'hopgate-bench-edge-'))
let edge: Edge | undefined

/** The account may log in with its key and reach the project (as `hopgate ssh-key add`, `acl grant`). */
async function allow(e: Edge, project: string, s: EdgeSshSetup): Promise<void> {
  const key = parseAuthorizedKey(s.publicKey)
  await e.access.grant(project, s.account)
  await e.access.addSshKey({
    account: s.account,
    fingerprint: fingerprint(key.blob),
    type: key.type,
    publicKey: key.blob.toString('base64'),
    comment: key.comment,
  })
}

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
        tcp:
          req.targetPort === undefined
            ? []
            : [parseTcpMapping(`127.0.0.1:0=${req.project}:${req.targetPort}`)],
        heartbeatIntervalMs: 5000,
        ...(req.ssh && {
          ssh: { host: '127.0.0.1', port: 0, upstreamUser: req.ssh.upstreamUser },
        }),
      })
      const port = edge.tcp[0]?.address.port
      if (!req.ssh) return { port, tunnelPort: edge.tunnel.address.port, token }
      await allow(edge, req.project, req.ssh)
      return {
        port,
        tunnelPort: edge.tunnel.address.port,
        token,
        sshPort: edge.ssh!.address.port,
        upstreamKey: (await loadEdgeKey(stateDir, 'upstream_ed25519')).publicLine,
      }
    }
    if (req.cmd === 'sessions') {
      if (!edge) throw new Error('edge not started')
      const sessions = edge.sessions.sessions(req.runnerId).length
      if (req.project === undefined) return { sessions }
      const routed = (await edge.store.getRoute(req.project))?.runner === req.runnerId
      return { sessions, routed }
    }
    throw new Error(`edge: unknown command ${req.cmd}`)
  },
  () => rmSync(stateDir, { recursive: true, force: true }),
)
