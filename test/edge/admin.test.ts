// The edge admin API over real HTTP against a real startEdge in a temp state dir: health and
// readiness, the runner list (health from the router, live sessions from the table), route get
// and compare-and-set with typed 400/404/409 answers, and revoke closing live sessions at once.
import t from 'tap'
import net from 'node:net'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { initCa } from '../../certs/pki.js'
import { startEdge } from '../../edge/edge.js'
import { startAgent } from '../../agent/agent.js'
import { startAdmin } from '../../edge/admin.js'
import { tempDir } from '../helpers/echo.js'
import { enroll, report } from '../helpers/runner.js'
import { until } from '../helpers/until.js'

const P = '0f8fad5b-d9cb-469f-a165-70867728950e'
const Q = '1b4e28ba-2fa1-11d2-883f-0016d3cca427'

t.test('admin API against a running edge with one agent', async (tt) => {
  const edgeDir = await tempDir(tt, 'admin-edge')
  await initCa(edgeDir, { edgeId: 'edge-1' })
  const edge = await startEdge({
    stateDir: edgeDir,
    tunnelPort: 0,
    adminPort: 0,
    heartbeatIntervalMs: 200,
  })
  tt.teardown(() => edge.close())
  tt.ok(edge.admin, 'the admin server is started when adminPort is given')
  tt.equal(edge.admin!.address.address, '127.0.0.1', 'loopback by default')
  const base = `http://127.0.0.1:${edge.admin!.address.port}`
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(base + path, {
      method,
      ...(body === undefined
        ? {}
        : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
    })
    return { status: res.status, json: (await res.json()) as Record<string, any> }
  }

  tt.equal((await call('GET', '/healthz')).status, 200, 'healthz')
  tt.equal((await call('GET', '/readyz')).status, 200, 'readyz while the tunnel listens')
  tt.same((await call('GET', '/v1/runners')).json, { runners: [] }, 'no runners yet')
  const nf = await call('GET', `/v1/routes/${P}`)
  tt.equal(nf.status, 404)
  tt.equal(nf.json.error.code, 'HOPGATE_ERR_ROUTE_NOT_FOUND', 'typed 404')
  tt.equal((await call('GET', '/v1/nope')).json.error.code, 'HOPGATE_ERR_ADMIN_NOT_FOUND')

  // Enroll and connect a real agent hosting P.
  const echo = net.createServer((s) => (s.on('error', () => {}), s.pipe(s)))
  echo.listen(0, '127.0.0.1')
  await once(echo, 'listening')
  tt.teardown(() => new Promise<void>((r) => echo.close(() => r())))
  const port = edge.tunnel.address.port
  const agentDir = await enroll(tt, edgeDir, port, 'runner-a')
  const agent = await startAgent({
    stateDir: agentDir,
    edges: [`127.0.0.1:${port}`],
    slots: 2,
    projects: {
      [P]: { host: '127.0.0.1', allowedPorts: [(echo.address() as net.AddressInfo).port] },
    },
    report,
  })
  tt.teardown(() => agent.close())
  await until(() => edge.sessions.sessions('runner-a').length === 2, 'two sessions')
  await until(async () => (await edge.store.getRoute(P)) !== undefined, 'P routed')

  const runners = (await call('GET', '/v1/runners')).json.runners as Array<Record<string, any>>
  tt.equal(runners.length, 1)
  tt.match(runners[0], { runnerId: 'runner-a', healthy: true, sessions: 2, revoked: false })
  tt.ok(runners[0]!.leaseRemainingMs > 0, 'lease remaining is reported')

  const got = await call('GET', `/v1/routes/${P}`)
  tt.match(got, {
    status: 200,
    json: { route: { project: P, runner: 'runner-a', state: 'active' } },
  })
  const epoch = got.json.route.epoch as number

  // Compare-and-set: a stale epoch loses with the current route, a fresh one wins and bumps it.
  const stale = await call('PUT', `/v1/routes/${P}`, {
    runner: 'runner-a',
    expectedEpoch: epoch + 5,
  })
  tt.equal(stale.status, 409)
  tt.equal(stale.json.error.code, 'HOPGATE_ERR_ROUTE_CONFLICT')
  tt.equal(stale.json.current.epoch, epoch, '409 carries the current route')
  const set = await call('PUT', `/v1/routes/${P}`, {
    runner: 'runner-a',
    state: 'draining',
    expectedEpoch: epoch,
  })
  tt.match(set, { status: 200, json: { route: { epoch: epoch + 1, state: 'draining' } } })
  const created = await call('PUT', `/v1/routes/${Q}`, { runner: 'runner-b', expectedEpoch: null })
  tt.match(created, { status: 200, json: { route: { project: Q, epoch: 1, state: 'active' } } })

  // Bad input: each a typed 400, nothing written.
  const bad: Array<[string, unknown, string]> = [
    [`/v1/routes/${P}`, '{nope', 'HOPGATE_ERR_ADMIN_BAD_REQUEST'],
    [`/v1/routes/${P}`, [1], 'HOPGATE_ERR_ADMIN_BAD_REQUEST'],
    [`/v1/routes/${P}`, { runner: 'runner-a' }, 'HOPGATE_ERR_ADMIN_BAD_REQUEST'],
    [
      `/v1/routes/${P}`,
      { runner: 'runner-a', expectedEpoch: 1, x: 1 },
      'HOPGATE_ERR_ADMIN_BAD_REQUEST',
    ],
    [`/v1/routes/${P}`, { runner: 'Bad Id', expectedEpoch: 1 }, 'HOPGATE_ERR_RUNNER_INVALID'],
    [
      `/v1/routes/${P}`,
      { runner: 'r', state: 'gone', expectedEpoch: 1 },
      'HOPGATE_ERR_ROUTE_STATE_INVALID',
    ],
    [
      '/v1/routes/NOT-A-UUID',
      { runner: 'r', expectedEpoch: 1 },
      'HOPGATE_ERR_ROUTE_PROJECT_INVALID',
    ],
  ]
  for (const [path, body, code] of bad) {
    const r = await call('PUT', path, body)
    tt.equal(r.status, 400, `${JSON.stringify(body)}: 400`)
    tt.equal(r.json.error.code, code, `${JSON.stringify(body)}: ${code}`)
    tt.type(r.json.error.message, 'string')
  }
  tt.equal((await edge.store.getRoute(P))?.epoch, epoch + 1, 'bad requests wrote nothing')

  const revokedAt = Date.now()
  const rv = await call('POST', '/v1/runners/runner-a/revoke')
  tt.match(rv, { status: 200, json: { runnerId: 'runner-a', newly: true, sessionsClosed: 2 } })
  tt.equal(edge.sessions.sessions('runner-a').length, 0, 'sessions closed before the answer')
  tt.ok(Date.now() - revokedAt < 1000)
  tt.ok(edge.revocation.isRevoked('runner-a'), 'on the deny list')
  const after = (await call('GET', '/v1/runners')).json.runners as Array<Record<string, any>>
  tt.match(after[0], { sessions: 0, revoked: true })
})

t.test('readyz answers 503 until the tunnel listens; unknown paths are typed 404s', async (tt) => {
  const dir = await mkdtemp(join(tmpdir(), 'hopgate-admin-ready-'))
  tt.teardown(() => rm(dir, { recursive: true, force: true }))
  await initCa(dir)
  // A stopped edge's pieces are enough: readiness is a callback the edge wires to its listener.
  const edge = await startEdge({ stateDir: dir, tunnelPort: 0 })
  let ready = false
  const admin = await startAdmin({
    host: '127.0.0.1',
    port: 0,
    store: edge.store,
    router: edge.router,
    sessions: edge.sessions,
    revocation: edge.revocation,
    ready: () => ready,
  })
  tt.teardown(async () => {
    await admin.close()
    await edge.close()
  })
  const base = `http://127.0.0.1:${admin.address.port}`
  tt.equal((await fetch(`${base}/readyz`)).status, 503, 'not ready')
  tt.equal((await fetch(`${base}/healthz`)).status, 200, 'alive all the same')
  ready = true
  tt.equal((await fetch(`${base}/readyz`)).status, 200, 'ready')
  const res = await fetch(`${base}/v1/runners/x/explode`, { method: 'POST' })
  tt.equal(res.status, 404)
  tt.match(await res.json(), { error: { code: 'HOPGATE_ERR_ADMIN_NOT_FOUND' } })
})
