// A one-process cluster for the agent tests: a CA, an edge (with PromMetrics) on loopback ports,
// a runner enrolled over TLS with a join token, and helpers to start its agent, reach a project
// through raw TCP ingress and read a counter. Real sockets everywhere; all closed in teardown.
import net from 'node:net'
import { once } from 'node:events'
import { initCa, type Pki } from '../../certs/pki.js'
import { createJoinToken, FileTokenStore } from '../../certs/tokens.js'
import { joinOverTls, saveRunnerIdentity } from '../../certs/enroll.js'
import { wallClock } from '../../certs/state.js'
import { startEdge, type Edge, type EdgeOptions } from '../../edge/edge.js'
import { startAgent, type Agent, type AgentOptions } from '../../agent/agent.js'
import { PromMetrics } from '../../shared/metrics-prom.js'
import { tempDir } from '../helpers/echo.js'
import type { TapTest } from '../helpers/yamux-pair.js'
import { report } from '../helpers/runner.js'

export { report } from '../helpers/runner.js'
export { until } from '../helpers/until.js'

export interface TestEdge {
  edge: Edge
  metrics: PromMetrics
  pki: Pki
  dir: string
  tunnel: string
  /** A single-use join token for `runnerId`. */
  token(runnerId: string, ttlMs?: number): Promise<string>
  /** The value of one counter/gauge sample, 0 when absent. */
  sample(name: string, labels?: Record<string, string>): Promise<number>
}

export async function testEdge(
  tt: TapTest,
  opts: Partial<EdgeOptions> = {},
  dir?: string,
): Promise<TestEdge> {
  const edgeDir = dir ?? (await tempDir(tt, 'edge'))
  const pki = dir
    ? (await import('../../certs/pki.js')).loadPki(edgeDir)
    : initCa(edgeDir, { edgeId: 'edge-1' }).then((r) => r.pki)
  const loaded = await pki
  const metrics = new PromMetrics()
  const edge = await startEdge({
    stateDir: edgeDir,
    tunnelPort: 0,
    heartbeatIntervalMs: 200,
    metrics,
    renderMetrics: () => metrics.render(),
    ...opts,
  })
  tt.teardown(() => edge.close())
  return {
    edge,
    metrics,
    pki: loaded,
    dir: edgeDir,
    tunnel: `127.0.0.1:${edge.tunnel.address.port}`,
    token: (runnerId, ttlMs = 15 * 60_000) =>
      createJoinToken(new FileTokenStore(edgeDir), {
        runnerId,
        ttlMs,
        edgeCaFingerprint: loaded.edgeCa.fingerprint.base64url,
        clock: wallClock,
      }),
    sample: async (name, labels = {}) => sampleOf(await metrics.render(), name, labels),
  }
}

/** Reads one sample from Prometheus text; the label set must match exactly. */
export function sampleOf(
  text: { body: string },
  name: string,
  labels: Record<string, string> = {},
): number {
  const want = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .sort()
    .join(',')
  for (const line of text.body.split('\n')) {
    const m = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (!m || m[1] !== name) continue
    const have = (m[2] ?? '').split(',').filter(Boolean).sort().join(',')
    if (have === want) return Number(m[3])
  }
  return 0
}

/** Enrolls `runnerId` against `e` and returns the agent's state dir. */
export async function enroll(tt: TapTest, e: TestEdge, runnerId: string): Promise<string> {
  const agentDir = await tempDir(tt, 'agent')
  const token = await e.token(runnerId)
  const [host, port] = e.tunnel.split(':') as [string, string]
  await saveRunnerIdentity(agentDir, await joinOverTls({ host, port: Number(port), token }))
  return agentDir
}

export async function testAgent(
  tt: TapTest,
  opts: Partial<AgentOptions> & Pick<AgentOptions, 'stateDir' | 'edges'>,
): Promise<Agent> {
  const agent = await startAgent({ slots: 1, report, ...opts })
  tt.teardown(() => agent.close())
  return agent
}

/** A client connection through raw TCP ingress: write, and read back what the echo returns. */
export async function echoClient(port: number): Promise<{
  socket: net.Socket
  /** Settles when the socket closes, for whatever reason. */
  closed: Promise<void>
  roundTrip(text: string): Promise<string>
  end(): Promise<void>
}> {
  const socket = net.connect(port, '127.0.0.1')
  await once(socket, 'connect')
  socket.setEncoding('utf8')
  socket.on('error', () => {})
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()))
  return {
    socket,
    closed,
    roundTrip: (text) =>
      new Promise((resolve, reject) => {
        let got = ''
        const onData = (c: string): void => {
          got += c
          if (got.length < text.length) return
          socket.off('data', onData)
          resolve(got)
        }
        socket.on('data', onData)
        socket.once('error', reject)
        socket.write(text)
      }),
    end: async () => {
      socket.end()
      await closed
    },
  }
}
