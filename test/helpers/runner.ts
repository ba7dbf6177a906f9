// A runner for tests that run a real edge and agent: enrollment through the edge's tunnel port
// with a single-use join token (the real TLS join), and the fixed capacity report every test
// agent sends. Starting the edge and the agent stays with each test (their options differ).
import { loadPki } from '../../certs/pki.js'
import { createJoinToken, FileTokenStore, type TokenStore } from '../../certs/tokens.js'
import { joinOverTls, saveRunnerIdentity } from '../../certs/enroll.js'
import { wallClock } from '../../certs/state.js'
import { tempDir } from './echo.js'
import type { TapTest } from './yamux-pair.js'

export const GiB = 1024 ** 3

/** The agent's `report`: room for 10 projects on 2 CPUs, 8 GiB, 50 of 100 GiB disk free. */
export const report = () => ({
  capacity: { maxProjects: 10, cpus: 2, memoryBytes: 8 * GiB },
  storage: { freeBytes: 50 * GiB, totalBytes: 100 * GiB },
})

/**
 * Enrolls `runnerId` through the edge whose state dir (holding its CAs) and tunnel port are
 * given and returns the new agent state dir (removed in teardown). The join token goes into
 * `tokens` (a cluster's shared store), else the edge's embedded one.
 */
export async function enroll(
  tt: TapTest,
  edgeDir: string,
  tunnelPort: number,
  runnerId: string,
  tokens: TokenStore = new FileTokenStore(edgeDir),
): Promise<string> {
  const pki = await loadPki(edgeDir)
  const token = await createJoinToken(tokens, {
    runnerId,
    ttlMs: 15 * 60_000,
    edgeCaFingerprint: pki.edgeCa.fingerprint.base64url,
    clock: wallClock,
  })
  const dir = await tempDir(tt, runnerId)
  await saveRunnerIdentity(dir, await joinOverTls({ host: '127.0.0.1', port: tunnelPort, token }))
  return dir
}
