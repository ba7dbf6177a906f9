// A real edge with HTTP ingress and real agents on loopback for the HTTP tests: CA, join tokens,
// enrollment over TLS, one agent (runner) per project, and per project a *recording* upstream
// HTTP server that remembers every request it got (method, target, raw headers, body) and answers
// JSON naming its project. `/ws` is a WebSocket echo, `/ws426` answers 426 to upgrades, `/slow`
// never answers, `/close` destroys the connection. Everything is closed in teardown.
import http from 'node:http'
import { once } from 'node:events'
import type net from 'node:net'
import { WebSocketServer } from 'ws'
import { initCa } from '../../certs/pki.js'
import { createJoinToken, FileTokenStore } from '../../certs/tokens.js'
import { joinOverTls, saveRunnerIdentity } from '../../certs/enroll.js'
import { wallClock } from '../../certs/state.js'
import { startEdge, type Edge } from '../../edge/edge.js'
import { startAgent } from '../../agent/agent.js'
import { UserTokens } from '../../edge/auth/user-tokens.js'
import type { HttpLimits } from '../../edge/http/ingress.js'
import { tempDir } from '../helpers/echo.js'
import type { TapTest } from '../helpers/yamux-pair.js'

export const P1 = '0f8fad5b-d9cb-469f-a165-70867728950e'
export const P2 = '7c9e6679-7425-40de-944b-e07fc1f90ae7'
const GiB = 1024 ** 3

export interface Recorded {
  project: string
  method: string
  url: string
  rawHeaders: string[]
  body: string
}

export interface Upstream {
  project: string
  port: number
  requests: Recorded[]
  upgrades: Recorded[]
}

export interface HttpCluster {
  edge: Edge
  stateDir: string
  http: string
  tokens: UserTokens
  upstreams: Map<string, Upstream>
  /** Every request any upstream saw, in order. */
  all: Recorded[]
  token(account: string, ttlMs?: number): string
  url(project: string, path?: string): string
}

export async function until(
  cond: () => boolean | Promise<boolean>,
  what: string,
  ms = 10_000,
): Promise<void> {
  const end = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`not reached in ${ms} ms: ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

async function recordingUpstream(tt: TapTest, project: string, all: Recorded[]): Promise<Upstream> {
  const up: Upstream = { project, port: 0, requests: [], upgrades: [] }
  const sockets = new Set<net.Socket>()
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const rec: Recorded = {
        project,
        method: req.method ?? '',
        url: req.url ?? '',
        rawHeaders: req.rawHeaders,
        body: Buffer.concat(chunks).toString('utf8'),
      }
      up.requests.push(rec)
      all.push(rec)
      const path = rec.url.split('?')[0]
      if (path === '/slow' || path?.endsWith('/slow')) return
      if (path === '/close' || path?.endsWith('/close')) {
        req.socket.destroy()
        return
      }
      const body = JSON.stringify({ project, method: rec.method, url: rec.url, body: rec.body })
      res.writeHead(200, {
        'content-type': 'application/json',
        'set-cookie': ['app=1; Path=/', 'hopgate_session=planted; Path=/'],
        'x-upstream': project,
        'content-length': Buffer.byteLength(body),
      })
      res.end(body)
    })
  })
  server.on('connection', (s: net.Socket) => {
    sockets.add(s)
    s.once('close', () => sockets.delete(s))
  })
  const wss = new WebSocketServer({ noServer: true, maxPayload: 1024 * 1024 })
  wss.on('connection', (ws) => {
    ws.on('error', () => {})
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }))
  })
  server.on('upgrade', (req, socket, head) => {
    const rec: Recorded = {
      project,
      method: req.method ?? '',
      url: req.url ?? '',
      rawHeaders: req.rawHeaders,
      body: '',
    }
    up.upgrades.push(rec)
    all.push(rec)
    if ((req.url ?? '').endsWith('/ws426')) {
      socket.end(
        'HTTP/1.1 426 Upgrade Required\r\nupgrade: websocket\r\ncontent-type: text/plain\r\n' +
          'content-length: 12\r\n\r\nnot for you\n',
      )
      return
    }
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  up.port = (server.address() as net.AddressInfo).port
  tt.teardown(async () => {
    for (const c of wss.clients) c.terminate()
    wss.close()
    for (const s of sockets) s.destroy()
    await new Promise<void>((r) => server.close(() => r()))
  })
  return up
}

/** Edge with HTTP ingress; one runner per project (runner-1 hosts P1, runner-2 hosts P2). */
export async function startHttpCluster(
  tt: TapTest,
  opts: {
    projects?: string[]
    limits?: Partial<HttpLimits>
    basePath?: string
    admin?: boolean
    tls?: { cert: string; key: string }
  } = {},
): Promise<HttpCluster> {
  const projects = opts.projects ?? [P1, P2]
  const edgeDir = await tempDir(tt, 'http-edge')
  const { pki } = await initCa(edgeDir, { edgeId: 'edge-1' })
  const all: Recorded[] = []
  const upstreams = new Map<string, Upstream>()
  for (const p of projects) upstreams.set(p, await recordingUpstream(tt, p, all))
  const edge = await startEdge({
    stateDir: edgeDir,
    tunnelPort: 0,
    heartbeatIntervalMs: 200,
    ...(opts.admin ? { adminPort: 0 } : {}),
    http: {
      host: '127.0.0.1',
      port: 0,
      ...(opts.basePath ? { basePath: opts.basePath } : {}),
      ...(opts.limits ? { limits: opts.limits } : {}),
      ...(opts.tls ? { tls: opts.tls } : {}),
    },
  })
  tt.teardown(() => edge.close())
  const tokenStore = new FileTokenStore(edgeDir)
  for (const [i, p] of projects.entries()) {
    const runnerId = `runner-${i + 1}`
    const token = await createJoinToken(tokenStore, {
      runnerId,
      ttlMs: 60_000,
      edgeCaFingerprint: pki.edgeCa.fingerprint.base64url,
      clock: wallClock,
    })
    const agentDir = await tempDir(tt, `http-agent-${i + 1}`)
    await saveRunnerIdentity(
      agentDir,
      await joinOverTls({ host: '127.0.0.1', port: edge.tunnel.address.port, token }),
    )
    const port = upstreams.get(p)!.port
    const agent = await startAgent({
      stateDir: agentDir,
      edges: [`127.0.0.1:${edge.tunnel.address.port}`],
      slots: 2,
      projects: { [p]: { host: '127.0.0.1', allowedPorts: [port], rawPort: port } },
      report: () => ({
        capacity: { maxProjects: 10, cpus: 2, memoryBytes: 8 * GiB },
        storage: { freeBytes: 50 * GiB, totalBytes: 100 * GiB },
      }),
    })
    tt.teardown(() => agent.close())
    await until(
      async () =>
        edge.sessions.sessions(runnerId).length === 2 &&
        (await edge.store.getRoute(p))?.runner === runnerId,
      `sessions and route of ${runnerId}`,
    )
  }
  const tokens = await UserTokens.open(edgeDir)
  const httpAddr = `127.0.0.1:${edge.http!.address.port}`
  const base = opts.basePath ?? ''
  return {
    edge,
    stateDir: edgeDir,
    http: httpAddr,
    tokens,
    upstreams,
    all,
    token: (account, ttlMs) =>
      tokens.mint({ account, ...(ttlMs !== undefined ? { ttlMs } : {}) }).token,
    url: (project, path = '/') =>
      `${opts.tls ? 'https' : 'http'}://${httpAddr}${base}/${project}/port/${upstreams.get(project)?.port ?? 1}${path}`,
  }
}

/** The value of a header in a recorded raw header list (all values, lowercase name match). */
export function rawValues(rawHeaders: string[], name: string): string[] {
  const out: string[] = []
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() === name) out.push(rawHeaders[i + 1]!)
  }
  return out
}
