// The cluster bench/forward.ts measures: edge-1 and edge-2 sharing a route store and an edge
// registry, one agent with sessions to edge-1 only, one project whose only target is the bench's
// echo port. As deployed (default): each edge and the agent a process of its own, sharing a real
// Redis (a throwaway redis-server, or the operator's under a per-run key prefix, removed after).
// In process: all on the caller's thread, the edges on one embedded store. It measures nothing.
import { randomBytes } from 'node:crypto'
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ChildProcess } from 'node:child_process'
import { systemClock } from '../../shared/clock.js'
import { initCa } from '../../certs/pki.js'
import { createJoinToken, FileTokenStore, type TokenStore } from '../../certs/tokens.js'
import { RedisTokenStore } from '../../certs/redis-tokens.js'
import { joinOverTls, saveRunnerIdentity } from '../../certs/enroll.js'
import { wallClock } from '../../certs/state.js'
import { EmbeddedStore } from '../../edge/routing/embedded-store.js'
import { RedisClient } from '../../edge/routing/redis-client.js'
import { MemoryEdgeRegistry } from '../../edge/cluster/registry.js'
import { startEdge, type Edge } from '../../edge/edge.js'
import { startAgent } from '../../agent/agent.js'
import { parseTcpMapping } from '../../edge/ingress/tcp.js'
import { removeKeys } from '../../shared/demo/redis.js'
import { Child } from '../lib/procs.js'
import { freePort, killRedisServer, spawnRedisServer } from '../lib/redis-server.js'
import type { TunnelCmd, TunnelReply } from './types.js'

export const FORWARD_PROJECT = '0b5e7c4a-3f1d-4c2a-9e8b-6d7f5a4b3c21'
const RUNNER = 'bench-runner'
const GiB = 1024 ** 3
/** Starting an edge makes its CA and certificates (RSA keys): long on a loaded box. */
const SETUP_MS = 120_000

export interface ForwardCluster {
  mode: 'processes' | 'in-process'
  /** edge-1's raw TCP ingress: it holds the agent's sessions. */
  direct: number
  /** edge-2's: it forwards every connection to edge-1. */
  forwarded: number
  /** The processes carrying the paths, by role (empty in process). */
  pids: Record<string, number>
  close(): Promise<void>
}

export interface ForwardClusterOptions {
  targetPort: number
  inProcess?: boolean
  /** An existing Redis (redis://...): keys go under a per-run prefix, removed on close. */
  store?: string
}

/** Two edge state dirs sharing the runner CA and the edge CA, as operators copy them. */
async function edgeDirs(root: string): Promise<[string, string]> {
  const dirs = [join(root, 'edge-1'), join(root, 'edge-2')] as [string, string]
  await initCa(dirs[0], { edgeId: 'edge-1' })
  await mkdir(join(dirs[1], 'pki'), { recursive: true, mode: 0o700 })
  for (const f of ['runner-ca.key', 'runner-ca.crt', 'edge-ca.key', 'edge-ca.crt']) {
    await copyFile(join(dirs[0], 'pki', f), join(dirs[1], 'pki', f))
  }
  await initCa(dirs[1], { edgeId: 'edge-2' })
  return dirs
}

async function mintToken(edgeDir: string, tokens: TokenStore): Promise<string> {
  const { pki } = await initCa(edgeDir)
  return createJoinToken(tokens, {
    runnerId: RUNNER,
    ttlMs: 15 * 60_000,
    edgeCaFingerprint: pki.edgeCa.fingerprint.base64url,
    clock: wallClock,
  })
}

async function until(what: string, ok: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`bench: ${what} within ${ms} ms`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

export async function startForwardCluster(opts: ForwardClusterOptions): Promise<ForwardCluster> {
  const root = await mkdtemp(join(tmpdir(), 'hopgate-bench-forward-'))
  const cleanups: Array<() => Promise<unknown>> = [() => rm(root, { recursive: true, force: true })]
  const close = async (): Promise<void> => {
    for (const c of cleanups.splice(0)) await c().catch(() => {})
  }
  try {
    const dirs = await edgeDirs(root)
    const built = opts.inProcess
      ? await inProcess(opts.targetPort, root, dirs, cleanups)
      : await processes(opts, dirs, cleanups)
    return { ...built, close }
  } catch (err) {
    await close()
    throw err
  }
}

type Built = Omit<ForwardCluster, 'close'>

async function processes(
  opts: ForwardClusterOptions,
  dirs: [string, string],
  cleanups: Array<() => Promise<unknown>>,
): Promise<Built> {
  let url = opts.store
  const keyPrefix = `hopgate-bench-${randomBytes(8).toString('hex')}:`
  if (url === undefined) {
    const port = await freePort()
    const server: ChildProcess = await spawnRedisServer(port)
    cleanups.unshift(() => killRedisServer(server))
    url = `redis://127.0.0.1:${port}`
  } else {
    const external = url
    cleanups.unshift(() => removeKeys(external, keyPrefix))
  }
  const client = await RedisClient.connect({ url, keyPrefix })
  cleanups.unshift(() => client.close())
  const edges = [1, 2].map(() =>
    Child.spawn<TunnelCmd, TunnelReply>(new URL('./cluster-edge.ts', import.meta.url)),
  ) as [Child<TunnelCmd, TunnelReply>, Child<TunnelCmd, TunnelReply>]
  const agent = Child.spawn<TunnelCmd, TunnelReply>(new URL('./agent.ts', import.meta.url))
  // Stopped before Redis goes: the edges' last writes and the agent's goodbye find it there.
  cleanups.unshift(() => Promise.all([agent.stop(), ...edges.map((e) => e.stop())]))
  const started = await Promise.all(
    edges.map((e, i) =>
      e.request(
        {
          cmd: 'cluster-edge',
          stateDir: dirs[i]!,
          redisUrl: url,
          keyPrefix,
          project: FORWARD_PROJECT,
          targetPort: opts.targetPort,
        },
        SETUP_MS,
      ),
    ),
  )
  const [s1, s2] = started as [TunnelReply, TunnelReply]
  const token = await mintToken(dirs[0], new RedisTokenStore(client))
  await agent.request(
    {
      cmd: 'agent',
      edgePort: s1.tunnelPort!,
      token,
      targetPort: opts.targetPort,
      project: FORWARD_PROJECT,
    },
    SETUP_MS,
  )
  await until('the agent up on edge-1 with the route, and edge-2 knowing edge-1', async () => {
    const a = await edges[0].request({
      cmd: 'sessions',
      runnerId: RUNNER,
      project: FORWARD_PROJECT,
    })
    const b = await edges[1].request({ cmd: 'sessions', runnerId: RUNNER })
    return a.sessions === 2 && a.routed === true && b.sessions === 0 && (b.peers ?? 0) >= 1
  })
  return {
    mode: 'processes',
    direct: s1.port!,
    forwarded: s2.port!,
    pids: { edge1: edges[0].pid!, edge2: edges[1].pid!, agent: agent.pid! },
  }
}

async function inProcess(
  targetPort: number,
  root: string,
  dirs: [string, string],
  cleanups: Array<() => Promise<unknown>>,
): Promise<Built> {
  const store = await EmbeddedStore.open({ stateDir: join(root, 'routes'), clock: systemClock })
  cleanups.unshift(() => store.close())
  const registry = new MemoryEdgeRegistry(systemClock)
  const edges: Edge[] = []
  for (const dir of dirs) {
    const e = await startEdge({
      stateDir: dir,
      tunnelPort: 0,
      routeStore: store,
      tcp: [parseTcpMapping(`127.0.0.1:0=${FORWARD_PROJECT}:${targetPort}`)],
      cluster: { registry, peerPort: 0, refreshIntervalMs: 100 },
    })
    cleanups.unshift(() => e.close())
    edges.push(e)
  }
  const [e1, e2] = edges as [Edge, Edge]
  const token = await mintToken(dirs[0], new FileTokenStore(dirs[0]))
  const agentDir = join(root, 'agent')
  const port1 = e1.tunnel.address.port
  await saveRunnerIdentity(agentDir, await joinOverTls({ host: '127.0.0.1', port: port1, token }))
  const agent = await startAgent({
    stateDir: agentDir,
    edges: [`127.0.0.1:${port1}`],
    slots: 2,
    projects: { [FORWARD_PROJECT]: { host: '127.0.0.1', allowedPorts: [targetPort] } },
    report: () => ({
      capacity: { maxProjects: 10, cpus: 2, memoryBytes: 8 * GiB },
      storage: { freeBytes: 50 * GiB, totalBytes: 100 * GiB },
    }),
  })
  cleanups.unshift(() => agent.close())
  await until('the agent up on edge-1, and edge-2 knowing edge-1', () =>
    Promise.resolve(e1.sessions.size > 0 && e2.cluster!.member.peers().length > 0),
  )
  return {
    mode: 'in-process',
    direct: e1.tcp[0]!.address.port,
    forwarded: e2.tcp[0]!.address.port,
    pids: {},
  }
}
