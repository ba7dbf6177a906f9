// `hopgate demo` assembled: on loopback, in one process, with the embedded route store. A state
// directory (a throwaway one under os.tmpdir() unless given), CA init, N edges sharing the two
// CAs (edge-2.. get their own edge certs from the copied edge CA), M agents each enrolled with a
// join token over TLS and keeping two reverse sessions to every edge, and the sample project
// (hosted by the first agent) whose services are reachable through raw TCP ingress on each edge.
// With `store: redis://...` the edges share Redis (under a per-run key prefix, removed on close)
// and an edge registry, each agent dials two edges, and the others reach it by forwarding.
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { AddressInfo } from 'node:net'
import { initCa } from '../../certs/pki.js'
import { createJoinToken, FileTokenStore } from '../../certs/tokens.js'
import { joinOverTls, saveRunnerIdentity } from '../../certs/enroll.js'
import { ensurePrivateDir, pkiPath, wallClock } from '../../certs/state.js'
import { startEdge, type Edge, type EdgeOptions } from '../../edge/edge.js'
import { parseTcpMapping } from '../../edge/ingress/tcp.js'
import { startAgent, type Agent } from '../../agent/agent.js'
import type { Logger } from '../log.js'
import { startDemoServices, type DemoServices } from './services.js'
import { UserTokens, USER_TOKEN_KEY_FILE } from '../../edge/auth/user-tokens.js'
import { userInfo } from 'node:os'
import { loadEdgeKey } from '../../edge/ssh/host-key.js'
import { fingerprint, parseAuthorizedKey } from '../../edge/ssh/wire.js'
import { loadDemoUserCa, startDemoSshd, writeDemoCert, writeDemoKey, type DemoSshd } from './ssh.js'
import { parseStoreChoice } from '../../edge/stores.js'
import { RedisEdgeRegistry } from '../../edge/cluster/redis-registry.js'
import { systemClock } from '../clock.js'
import { demoKeyPrefix, keepAlive, removeKeys, sweepDeadRuns, type DemoLiveness } from './redis.js'

/**
 * The demo account: a collaborator of the sample project, with a user token (HTTP, issue 4)
 * and an SSH key (issue 5).
 */
export const DEMO_ACCOUNT = 'demo'
/** The demo token's lifetime: a working day. */
const DEMO_TOKEN_TTL_MS = 12 * 3_600_000

const HOST = '127.0.0.1'
const GiB = 1024 ** 3
const READY_TIMEOUT_MS = 20_000

export interface DemoClusterOptions {
  project: string
  edges: number
  agents: number
  /** Reverse sessions from each agent to each edge (the connector gets slots x edges). */
  slotsPerEdge: number
  /** Ports of the first edge; 0 picks a free one. Further edges always use free ports. */
  tunnelPort: number
  tcpPort: number
  httpTcpPort: number
  adminPort: number
  /** HTTP and WebSocket ingress of the first edge (`/{project}/...`); 0 picks a free port. */
  webPort: number
  /** SSH ingress port of the first edge; 0 picks a free one. @default 0 */
  sshPort?: number
  /** Used (and kept) when given; otherwise a temp dir is created and removed by close(). */
  stateDir?: string
  /**
   * An SSH user CA in the state dir that every edge trusts; the demo key then logs in with its
   * certificate only (it is not registered as a plain key). @default false
   */
  sshUserCa?: boolean
  /**
   * `redis://...`: every edge shares it (routes, tokens, revocations, ACL, SSH keys, the edge
   * registry) under a key prefix of this run only, removed by close(); agents then connect to two
   * edges each and the others forward. @default 'embedded' (one store per edge)
   */
  store?: string
  log: Logger
}

export interface DemoEdgeInfo {
  id: string
  tunnel: string
  admin: string | null
  tcp: string
  httpTcp: string
  /** HTTP and WebSocket ingress, host:port. */
  http: string
  /** SSH ingress host:port. */
  ssh: string
}

export interface DemoCluster {
  project: string
  runner: string
  runners: string[]
  stateDir: string
  createdStateDir: boolean
  edges: DemoEdgeInfo[]
  services: DemoServices
  /** A user token for DEMO_ACCOUNT, a collaborator of the project on every edge. */
  account: string
  token: string
  /** The demo account's private key (0600) for `ssh -i`. */
  sshKey: string
  /** With `sshUserCa`: the demo key's certificate (`<sshKey>-cert.pub`). */
  sshCert?: string
  /** known_hosts lines pinning each edge's SSH host key. */
  knownHosts: string
  sshd: DemoSshd['kind']
  /** The project's sshd on loopback (the agent's ssh target; bench/ssh.ts dials it directly). */
  sshdPort: number
  /** With a shared store: where, and the key prefix of this run (gone after close()). */
  store?: { kind: 'redis'; keyPrefix: string }
  /** Agents, edges, services, then the temp state dir; idempotent. */
  close(): Promise<void>
}

const hostPort = (a: AddressInfo): string =>
  a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`

/** The admin listener if this edge build has one (it is being added), else null. */
function adminAddress(edge: Edge): string | null {
  const admin = (edge as unknown as { admin?: unknown }).admin
  if (typeof admin === 'string') return admin
  const addr = (admin as { address?: unknown } | null | undefined)?.address
  if (addr && typeof addr === 'object' && 'port' in addr) return hostPort(addr as AddressInfo)
  if (typeof addr === 'string') return addr
  return null
}

async function until(cond: () => Promise<boolean>, what: string): Promise<void> {
  const end = Date.now() + READY_TIMEOUT_MS
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`demo not ready after ${READY_TIMEOUT_MS} ms: ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

export async function startDemoCluster(opts: DemoClusterOptions): Promise<DemoCluster> {
  const { log, project } = opts
  const createdStateDir = opts.stateDir === undefined
  const stateDir = opts.stateDir ?? (await mkdtemp(join(tmpdir(), 'hopgate-demo-')))
  const edges: Edge[] = []
  const agents: Agent[] = []
  const runners: string[] = []
  let services: DemoServices | undefined
  let sshd: DemoSshd | undefined
  let closing: Promise<void> | undefined
  let liveness: DemoLiveness | undefined
  const choice = parseStoreChoice(opts.store ?? 'embedded')
  const shared =
    choice.kind === 'redis' ? { url: choice.url, keyPrefix: demoKeyPrefix() } : undefined
  // One registry for the edges of this process; each edge keeps its own lease in it.
  const registry = shared
    ? new RedisEdgeRegistry({ redis: shared.url, clock: systemClock, prefix: shared.keyPrefix })
    : undefined

  const close = (): Promise<void> =>
    (closing ??= (async () => {
      const step = async (what: string, fn: () => Promise<void>): Promise<void> => {
        try {
          await fn()
        } catch (err) {
          log.warn({ err }, `closing ${what} failed`)
        }
      }
      await Promise.all(agents.map((a) => step(`agent ${a.runnerId}`, () => a.close())))
      await Promise.all(edges.map((e) => step(`edge ${e.edgeId}`, () => e.close())))
      if (registry) await step('edge registry', () => registry.close())
      liveness?.stop()
      if (shared) {
        // Last, after every edge wrote its goodbyes: nothing of this run stays in Redis.
        await step('redis keys', async () => {
          const n = await removeKeys(shared.url, shared.keyPrefix)
          log.info({ keyPrefix: shared.keyPrefix, removed: n }, 'demo keys removed from redis')
        })
      }
      const svc = services
      if (svc) await step('services', () => svc.close())
      const d = sshd
      if (d) await step('sshd', () => d.close())
      if (createdStateDir) {
        await step('state dir', () => rm(stateDir, { recursive: true, force: true }))
      }
    })())

  try {
    log.info({ stateDir, created: createdStateDir }, 'demo state directory')
    if (shared) {
      // Runs killed before they could clean up (kill -9) left keys without a TTL: remove those,
      // then mark this run alive before any of its keys exist, so a later sweep spares it.
      const swept = await sweepDeadRuns(shared.url)
      if (swept.prefixes.length > 0) log.info(swept, 'removed the keys of dead demo runs')
      liveness = await keepAlive(shared.url, shared.keyPrefix)
    }
    services = await startDemoServices({ project, runner: () => runners[0] ?? '', log })
    const { tcpEchoPort, httpPort } = services

    const userCa = opts.sshUserCa ? await loadDemoUserCa(stateDir) : undefined
    // Edges: edge-1 creates both CAs; the others copy them and get their own edge certs.
    const firstDir = join(stateDir, 'edge-1')
    for (let i = 1; i <= opts.edges; i++) {
      const dir = join(stateDir, `edge-${i}`)
      if (i > 1) {
        await ensurePrivateDir(dir)
        await ensurePrivateDir(pkiPath(dir, ''))
        for (const f of ['runner-ca.key', 'runner-ca.crt', 'edge-ca.key', 'edge-ca.crt']) {
          // Same CA files on every edge (copyFile keeps the 0600 mode of the keys).
          await copyFile(pkiPath(firstDir, f), pkiPath(dir, f))
        }
        // One user-token key for all edges, so the demo token works on each of them.
        await copyFile(join(firstDir, USER_TOKEN_KEY_FILE), join(dir, USER_TOKEN_KEY_FILE))
      } else {
        await UserTokens.open(dir)
      }
      await initCa(dir, { edgeId: `edge-${i}` })
      const first = i === 1
      const edgeOpts: EdgeOptions & { adminPort?: number } = {
        stateDir: dir,
        tunnelHost: HOST,
        tunnelPort: first ? opts.tunnelPort : 0,
        adminPort: first ? opts.adminPort : 0,
        tcp: [
          parseTcpMapping(`${HOST}:${first ? opts.tcpPort : 0}=${project}:${tcpEchoPort}`),
          parseTcpMapping(`${HOST}:${first ? opts.httpTcpPort : 0}=${project}:${httpPort}`),
        ],
        http: { host: HOST, port: first ? opts.webPort : 0 },
        onEvent: (event, detail) => {
          const routine = ['session', 'ssh-login', 'peer-forwarded'].includes(event)
          const level = routine ? 'debug' : 'warn'
          log[level]({ edge: `edge-${i}`, event, ...detail }, `edge: ${event}`)
        },
        // As the current user: a non-root sshd logs in only the user it runs as.
        ssh: {
          host: HOST,
          port: first ? (opts.sshPort ?? 0) : 0,
          upstreamUser: userInfo().username,
          ...(userCa ? { userCaKeys: [userCa.publicLine] } : {}),
        },
        ...(shared &&
          registry && {
            store: shared.url,
            storeKeyPrefix: shared.keyPrefix,
            cluster: { registry, peerHost: HOST, peerPort: 0 },
          }),
      }
      edges.push(await startEdge(edgeOpts))
    }
    // The project's sshd trusts every edge's upstream key; the demo account gets a key and access.
    const upstreamKeys = await Promise.all(
      edges.map(
        async (_e, i) =>
          (await loadEdgeKey(join(stateDir, `edge-${i + 1}`), 'upstream_ed25519')).publicLine,
      ),
    )
    sshd = await startDemoSshd(join(stateDir, 'project-sshd'), upstreamKeys, log)
    const demoKey = await writeDemoKey(stateDir)
    const parsedKey = parseAuthorizedKey(demoKey.key.publicLine)
    // With a CA the certificate is the credential: the bare key is not registered, so a login
    // proves the certificate checks (CA, principal, validity) passed.
    const sshCert = userCa
      ? await writeDemoCert(
          demoKey.path,
          demoKey.key,
          userCa.key,
          DEMO_ACCOUNT,
          wallClock.now(),
          DEMO_TOKEN_TTL_MS,
        )
      : undefined
    for (const edge of edges) {
      await edge.access.grant(project, DEMO_ACCOUNT)
      if (!userCa && !(await edge.access.findSshKey(fingerprint(parsedKey.blob)))) {
        await edge.access.addSshKey({
          account: DEMO_ACCOUNT,
          fingerprint: fingerprint(parsedKey.blob),
          type: parsedKey.type,
          publicKey: parsedKey.blob.toString('base64'),
          comment: parsedKey.comment,
        })
      }
    }
    const knownHosts: string[] = []
    for (let i = 0; i < edges.length; i++) {
      const hk = await loadEdgeKey(join(stateDir, `edge-${i + 1}`), 'host_ed25519')
      knownHosts.push(`[${HOST}]:${edges[i]!.ssh!.address.port} ${hk.publicLine}`)
    }
    await writeFile(join(stateDir, 'known_hosts'), knownHosts.join('\n') + '\n')
    const tunnels = edges.map((e) => hostPort(e.tunnel.address))
    const firstTunnel = edges[0]!.tunnel.address
    // The store edge-1 checks join tokens against (the shared one with --store).
    const tokenStore = shared ? edges[0]!.stores.tokens : new FileTokenStore(firstDir)
    const { pki } = await initCa(firstDir, { edgeId: 'edge-1' })

    // Agents: each enrolls once through edge-1, then dials every edge; with a shared store two
    // edges each (agent i: edges i and i+1, wrapping), so some edge has no session and forwards.
    const edgesOf = (i: number): number[] =>
      shared && edges.length > 2
        ? [(i - 1) % edges.length, i % edges.length]
        : edges.map((_e, j) => j)
    for (let i = 1; i <= opts.agents; i++) {
      const runnerId = `demo-runner-${i}`
      const token = await createJoinToken(tokenStore, {
        runnerId,
        ttlMs: 10 * 60_000,
        edgeCaFingerprint: pki.edgeCa.fingerprint.base64url,
        clock: wallClock,
      })
      const identity = await joinOverTls({ host: HOST, port: firstTunnel.port, token })
      const dir = join(stateDir, `agent-${i}`)
      await saveRunnerIdentity(dir, identity)
      runners.push(identity.runnerId)
      log.info({ runner: identity.runnerId }, 'agent enrolled with a join token')
      const hosts =
        i === 1
          ? {
              [project]: { host: HOST, sshPort: sshd.port, allowedPorts: [tcpEchoPort, httpPort] },
            }
          : {}
      agents.push(
        await startAgent({
          stateDir: dir,
          edges: edgesOf(i).map((j) => tunnels[j]!),
          slots: opts.slotsPerEdge * edgesOf(i).length,
          projects: hosts,
          report: () => ({
            capacity: { maxProjects: 10, cpus: 2, memoryBytes: 8 * GiB },
            storage: { freeBytes: 50 * GiB, totalBytes: 100 * GiB },
          }),
          onEvent: (event, detail) => {
            const level = event === 'session' ? 'debug' : 'warn'
            log[level]({ runner: runnerId, event, ...detail }, `agent: ${event}`)
          },
        }),
      )
    }

    const host = runners[0]!
    for (const edge of edges) await edge.access.grant(project, DEMO_ACCOUNT)
    const { token } = (await UserTokens.open(firstDir)).mint({
      account: DEMO_ACCOUNT,
      ttlMs: DEMO_TOKEN_TTL_MS,
    })
    for (const [j, edge] of edges.entries()) {
      const here = runners.filter((_r, i) => edgesOf(i + 1).includes(j))
      await until(
        async () =>
          here.every((r) => edge.sessions.sessions(r).length >= opts.slotsPerEdge) &&
          (await edge.store.getRoute(project))?.runner === host &&
          // A forwarding edge needs its peers and the runner's edges before the first user.
          (!edge.cluster ||
            (edge.cluster.member.peers().length === edges.length - 1 &&
              ((await edge.store.getRunner(host))?.edges.length ?? 0) >= edgesOf(1).length)),
        `sessions and the project's route on ${edge.edgeId}`,
      )
    }

    return {
      project,
      runner: host,
      runners,
      stateDir,
      createdStateDir,
      services,
      account: DEMO_ACCOUNT,
      token,
      sshKey: demoKey.path,
      ...(sshCert ? { sshCert } : {}),
      knownHosts: knownHosts.join('\n') + '\n',
      sshd: sshd.kind,
      sshdPort: sshd.port,
      ...(shared && { store: { kind: 'redis' as const, keyPrefix: shared.keyPrefix } }),
      edges: edges.map((e, i) => ({
        id: e.edgeId,
        tunnel: tunnels[i]!,
        admin: adminAddress(e),
        tcp: hostPort(e.tcp[0]!.address),
        httpTcp: hostPort(e.tcp[1]!.address),
        http: hostPort(e.http!.address),
        ssh: hostPort(e.ssh!.address),
      })),
      close,
    }
  } catch (err) {
    await close()
    throw err
  }
}
