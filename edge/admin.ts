// The edge admin HTTP API (default 127.0.0.1:9090, loopback because it is unauthenticated):
// liveness and readiness, Prometheus metrics, the runner list with health and live sessions, route get and
// compare-and-set, and revocation that closes a runner's sessions at once. Errors answer as
// `{error:{code,message}}` with the typed code's HTTP status; `hopgate runners|route|runner` call it.
import http from 'node:http'
import { HopgateError, isHopgateError } from '../shared/errors.js'
import type { Revocations } from '../certs/revocation.js'
import type { RouteStore } from './routing/store.js'
import { isRouteConflict } from './routing/store.js'
import type { Router } from './routing/router.js'
import { assertProjectId, assertRouteState, assertRunnerId } from './routing/types.js'
import type { SessionTable } from './tunnel/sessions.js'
import type { AccessStore } from './auth/access-store.js'
import { assertAccountId } from './auth/embedded-access.js'
import { fingerprint, parseAuthorizedKey } from './ssh/wire.js'
import { startSmallHttp, type SmallHttpServer } from '../shared/small-http.js'

/** Request bodies are a few fields; anything larger is a mistake or an attack. */
const MAX_BODY_BYTES = 16 * 1024

export interface AdminOptions {
  host: string
  port: number
  store: RouteStore
  router: Router
  sessions: SessionTable
  revocation: Revocations
  /** Collaborators (`hopgate acl`); the ACL endpoints answer 404 without it. */
  access?: AccessStore
  /** Readiness: true while the tunnel listener accepts connections. */
  ready: () => boolean
  onRevoke?: (runnerId: string, sessionsClosed: number) => void
  /** Prometheus text for `GET /metrics` (shared/metrics-prom.ts render()); 404 without it. */
  metrics?: () => Promise<{ contentType: string; body: string }>
}

export type AdminServer = SmallHttpServer

type Reply = { status: number; body: unknown }

export function startAdmin(opts: AdminOptions): Promise<AdminServer> {
  return startSmallHttp(opts, (req, res) => {
    if (opts.metrics && req.method === 'GET' && req.url?.split('?')[0] === '/metrics') {
      // Text, not JSON: the one endpoint whose format Prometheus decides.
      opts.metrics().then(
        (m) => {
          res.writeHead(200, { 'content-type': m.contentType, 'cache-control': 'no-store' })
          res.end(m.body)
        },
        (err: unknown) => send(res, errorReply(err)),
      )
      return
    }
    handle(opts, req).then(
      (reply) => send(res, reply),
      (err: unknown) => send(res, errorReply(err)),
    )
  })
}

async function handle(opts: AdminOptions, req: http.IncomingMessage): Promise<Reply> {
  const url = new URL(req.url ?? '/', 'http://admin')
  const parts = url.pathname.split('/').filter((p) => p.length > 0)
  const method = req.method ?? 'GET'
  const route = `${method} /${parts.map((p, i) => (i >= 2 ? ':' : p)).join('/')}`

  switch (route) {
    case 'GET /healthz':
      return { status: 200, body: { ok: true } }
    case 'GET /readyz':
      return opts.ready()
        ? { status: 200, body: { ready: true } }
        : { status: 503, body: { ready: false } }
    case 'GET /v1/runners':
      return { status: 200, body: { runners: await listRunners(opts) } }
    case 'GET /v1/routes/:': {
      const project = decodeURIComponent(parts[2]!)
      assertProjectId(project)
      const current = await opts.store.getRoute(project)
      if (!current) throw new HopgateError('HOPGATE_ERR_ROUTE_NOT_FOUND', project)
      return { status: 200, body: { route: current } }
    }
    case 'PUT /v1/routes/:':
      return setRoute(opts, decodeURIComponent(parts[2]!), await readJson(req))
    case 'POST /v1/runners/:/:':
      if (parts[3] === 'revoke') return revoke(opts, decodeURIComponent(parts[2]!))
      break
    // SSH keys of accounts (issue 5): /v1/accounts/<account>/ssh-keys[/<fingerprint>]
    case 'GET /v1/accounts/:/:':
    case 'POST /v1/accounts/:/:':
    case 'DELETE /v1/accounts/:/:/:':
      if (parts[3] === 'ssh-keys' && opts.access) {
        return sshKeys(opts.access, method, decodeURIComponent(parts[2]!), parts[4], req)
      }
      break
  }
  // ACL (issue 4): GET /v1/acl/<project>, PUT|DELETE /v1/acl/<project>/<account>.
  if (opts.access && parts[0] === 'v1' && parts[1] === 'acl') {
    const reply = await acl(opts.access, method, parts.slice(2).map(decodeURIComponent))
    if (reply) return reply
  }
  throw new HopgateError('HOPGATE_ERR_ADMIN_NOT_FOUND', `${method} ${url.pathname}`)
}

async function listRunners(opts: AdminOptions): Promise<unknown[]> {
  const runners = await opts.store.listRunners()
  return runners.map((r) => {
    // lease.expiresAt is in the edge's monotonic clock; only the remaining time means anything
    // outside this process.
    const { lease, ...rest } = r
    return {
      ...rest,
      healthy: opts.router.isHealthy(r),
      sessions: opts.sessions.sessions(r.runnerId).length,
      leaseRemainingMs: Math.max(0, Math.round(lease.expiresAt - performance.now())),
      revoked: opts.revocation.isRevoked(r.runnerId),
    }
  })
}

async function setRoute(opts: AdminOptions, project: string, body: unknown): Promise<Reply> {
  assertProjectId(project)
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new HopgateError('HOPGATE_ERR_ADMIN_BAD_REQUEST', 'expected a JSON object')
  }
  const { runner, state = 'active', expectedEpoch, ...extra } = body as Record<string, unknown>
  const unknown = Object.keys(extra)
  if (unknown.length > 0) {
    throw new HopgateError(
      'HOPGATE_ERR_ADMIN_BAD_REQUEST',
      `unknown field(s) ${unknown.join(', ')}`,
    )
  }
  assertRunnerId(runner)
  assertRouteState(state)
  // Required, not defaulted: a write that does not say which route it replaces is not fenced.
  if (
    expectedEpoch !== null &&
    !(typeof expectedEpoch === 'number' && Number.isSafeInteger(expectedEpoch) && expectedEpoch > 0)
  ) {
    throw new HopgateError(
      'HOPGATE_ERR_ADMIN_BAD_REQUEST',
      'expectedEpoch must be a positive integer, or null to create the route',
    )
  }
  const next = await opts.store.casRoute(project, expectedEpoch, {
    runner,
    state,
  })
  return { status: 200, body: { route: next } }
}

async function revoke(opts: AdminOptions, runnerId: string): Promise<Reply> {
  assertRunnerId(runnerId)
  // Counted before the await: the revocation push or the edge's periodic watch may close them
  // while the deny list is written, and those closes are this revoke's doing too.
  const live = opts.sessions.sessions(runnerId).length
  const newly = await opts.revocation.revoke(runnerId, { reason: 'admin API' })
  // The edge's periodic watch would close them within a heartbeat; the operator asked now.
  const sessionsClosed = Math.max(live, opts.sessions.revoke(runnerId))
  opts.onRevoke?.(runnerId, sessionsClosed)
  return { status: 200, body: { runnerId, revoked: true, newly, sessionsClosed } }
}

async function acl(
  access: AccessStore,
  method: string,
  args: string[],
): Promise<Reply | undefined> {
  const [project, account] = args
  if (args.length === 1 && method === 'GET') {
    assertProjectId(project)
    return { status: 200, body: { project, accounts: await access.collaborators(project) } }
  }
  if (args.length !== 2 || (method !== 'PUT' && method !== 'DELETE')) return undefined
  assertProjectId(project)
  assertAccountId(account)
  if (method === 'PUT') {
    const changed = await access.grant(project, account)
    return { status: 200, body: { project, account, collaborator: true, changed } }
  }
  const changed = await access.revoke(project, account)
  return { status: 200, body: { project, account, collaborator: false, changed } }
}

async function sshKeys(
  access: AccessStore,
  method: string,
  account: string,
  fp: string | undefined,
  req: http.IncomingMessage,
): Promise<Reply> {
  assertAccountId(account)
  if (method === 'GET') return { status: 200, body: { keys: await access.listSshKeys(account) } }
  if (method === 'DELETE') {
    const removed = await access.removeSshKey(account, decodeURIComponent(fp ?? ''))
    if (!removed) throw new HopgateError('HOPGATE_ERR_ADMIN_NOT_FOUND', 'no such key')
    return { status: 200, body: { removed: true } }
  }
  const body = await readJson(req)
  const line = (body as { key?: unknown } | null)?.key
  if (typeof line !== 'string' || line.length > 16 * 1024) {
    throw new HopgateError(
      'HOPGATE_ERR_SSH_KEY_INVALID',
      'expected {"key": "<authorized_keys line>"}',
    )
  }
  const key = parseAuthorizedKey(line)
  const record = await access.addSshKey({
    account,
    fingerprint: fingerprint(key.blob),
    type: key.type,
    publicKey: key.blob.toString('base64'),
    comment: key.comment,
  })
  return { status: 200, body: { key: record } }
}

async function readJson(req: http.IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > MAX_BODY_BYTES) {
      throw new HopgateError('HOPGATE_ERR_ADMIN_BAD_REQUEST', `body over ${MAX_BODY_BYTES} bytes`)
    }
    chunks.push(chunk)
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown
  } catch (err) {
    throw new HopgateError('HOPGATE_ERR_ADMIN_BAD_REQUEST', 'body is not JSON', { cause: err })
  }
}

function errorReply(err: unknown): Reply {
  if (isRouteConflict(err)) {
    const body = { error: { code: err.code, message: err.message }, current: err.current ?? null }
    return { status: 409, body }
  }
  if (isHopgateError(err)) {
    return {
      status: err.httpStatus ?? 500,
      body: { error: { code: err.code, message: err.message } },
    }
  }
  // Untyped failures are bugs; their text may hold internals, so it stays in the edge's logs.
  return {
    status: 500,
    body: { error: { code: 'HOPGATE_ERR_INTERNAL', message: 'internal error' } },
  }
}

function send(res: http.ServerResponse, reply: Reply): void {
  const text = JSON.stringify(reply.body) + '\n'
  res.writeHead(reply.status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  })
  res.end(text)
}
