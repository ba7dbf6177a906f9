// Middle process: a hopgate agent as `hopgate agent` assembles it: enrolls with the bench edge's
// join token over TLS, saves its identity in a throwaway state dir, and keeps two reverse sessions
// to the edge, serving one project whose only targets are the bench target's port and (for
// bench/ssh.ts) its sshd as the `ssh` target. It starts no target itself.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { joinOverTls, saveRunnerIdentity } from '../../certs/enroll.js'
import { startAgent, type Agent } from '../../agent/agent.js'
import { serve } from './serve.js'

const GiB = 1024 ** 3
const stateDir = mkdtempSync(join(tmpdir(), 'hopgate-bench-agent-'))
let agent: Agent | undefined

serve(
  'agent',
  async (req) => {
    if (req.cmd !== 'agent') throw new Error(`agent: unknown command ${req.cmd}`)
    const identity = await joinOverTls({ host: '127.0.0.1', port: req.edgePort, token: req.token })
    await saveRunnerIdentity(stateDir, identity)
    agent = await startAgent({
      stateDir,
      edges: [`127.0.0.1:${req.edgePort}`],
      slots: 2,
      projects: {
        [req.project]: {
          host: '127.0.0.1',
          allowedPorts: req.targetPort === undefined ? [] : [req.targetPort],
          ...(req.sshPort !== undefined && { sshPort: req.sshPort }),
        },
      },
      report: () => ({
        capacity: { maxProjects: 10, cpus: 2, memoryBytes: 8 * GiB },
        storage: { freeBytes: 50 * GiB, totalBytes: 100 * GiB },
      }),
    })
    return { port: 0 }
  },
  () => {
    void agent?.close()
    rmSync(stateDir, { recursive: true, force: true })
  },
)
