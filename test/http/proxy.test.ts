// HTTP through a real edge and two real agents (two runners, one project each), with Node's
// fetch, curl and raw sockets: the three URL kinds, bodies, per-request routing on one keep-alive
// connection, header stripping as the recording upstream saw it, the one-time link and its cookie,
// every error status with JSON and HTML bodies, and ACL changes through the admin API and the
// `hopgate acl` / `hopgate token user` commands taking effect at once.
import t from 'tap'
import http from 'node:http'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { startHttpCluster, rawValues, P1, P2 } from './_cluster.js'
import { exchange, parseResponses, request } from './_raw.js'

const P3 = '3b241101-e2bb-4255-8caf-4136c566a962'
const ROOT = fileURLToPath(new URL('../..', import.meta.url))

function run(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'shared/cli/main.ts', ...args], {
    cwd: ROOT,
    env: { ...process.env, HOPGATE_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()))
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr })))
}

function curl(args: string[]): Promise<{ code: number | null; stdout: string }> {
  const child = spawn('curl', ['-sS', ...args], { stdio: ['ignore', 'pipe', 'inherit'] })
  let stdout = ''
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()))
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout })))
}

t.test('HTTP ingress end to end', async (tt) => {
  const c = await startHttpCluster(tt, { admin: true, limits: { upstreamTimeoutMs: 1500 } })
  const admin = `127.0.0.1:${c.edge.admin!.address.port}`
  const port1 = c.upstreams.get(P1)!.port
  const port2 = c.upstreams.get(P2)!.port
  await c.edge.access.grant(P1, 'alice')
  await c.edge.access.grant(P2, 'alice')
  const alice = c.token('alice')
  const bearer = { authorization: `Bearer ${alice}` }

  await tt.test('fetch: the three URL kinds reach the project with the right path', async (st) => {
    const a = await fetch(c.url(P1, '/lab/tree?x=1&y=%2F'), { headers: bearer })
    st.equal(a.status, 200)
    st.same(
      await a.json(),
      {
        project: P1,
        method: 'GET',
        url: `/${P1}/port/${port1}/lab/tree?x=1&y=%2F`,
        body: '',
      },
      '/port/: path forwarded unchanged',
    )
    const b = await fetch(`http://${c.http}/${P2}/server/${port2}/app/x%20y?q`, { headers: bearer })
    st.match(await b.json(), { project: P2, url: '/app/x%20y?q' }, '/server/: prefix stripped')
    const r = await fetch(`http://${c.http}/${P1}/raw/files/a.txt`, { headers: bearer })
    st.match(await r.json(), { project: P1, url: '/files/a.txt' }, '/raw/: the raw service')
    const post = await fetch(c.url(P1, '/post'), {
      method: 'POST',
      headers: bearer,
      body: 'x'.repeat(100_000),
    })
    st.equal(
      ((await post.json()) as { body: string }).body.length,
      100_000,
      'a 100 kB body goes through',
    )
    st.equal(post.headers.get('x-upstream'), P1)
    st.equal(
      post.headers.getSetCookie().join('|'),
      'app=1; Path=/',
      'a planted hopgate_session is dropped',
    )
  })

  await tt.test('curl: GET, chunked POST, HEAD', async (st) => {
    const get = await curl(['-H', `Authorization: Bearer ${alice}`, c.url(P2, '/curl')])
    st.equal(get.code, 0)
    st.match(JSON.parse(get.stdout), { project: P2, url: `/${P2}/port/${port2}/curl` })
    const post = await curl([
      '-H',
      `Authorization: Bearer ${alice}`,
      '-H',
      'Transfer-Encoding: chunked',
      '--data-binary',
      'chunky',
      c.url(P1, '/c'),
    ])
    st.match(JSON.parse(post.stdout), { method: 'POST', body: 'chunky' }, 'chunked body re-framed')
    const head = await curl(['-I', '-H', `Authorization: Bearer ${alice}`, c.url(P1, '/h')])
    st.match(head.stdout, /^HTTP\/1\.1 200/)
  })

  await tt.test(
    'per-request routing: one keep-alive connection, two projects, two runners',
    async (st) => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
      st.teardown(() => agent.destroy())
      const sockets = new Set<unknown>()
      const get = (url: string): Promise<{ project: string }> =>
        new Promise((resolve, reject) => {
          const req = http.get(url, { agent, headers: bearer }, (res) => {
            let body = ''
            res.on('data', (d: Buffer) => (body += d.toString()))
            res.on('end', () => resolve(JSON.parse(body) as { project: string }))
          })
          req.on('socket', (s) => sockets.add(s))
          req.on('error', reject)
        })
      const before = {
        p1: c.upstreams.get(P1)!.requests.length,
        p2: c.upstreams.get(P2)!.requests.length,
      }
      const order = [P1, P2, P1, P2, P2, P1]
      for (const p of order) st.equal((await get(c.url(p, `/seq-${p}`))).project, p)
      st.equal(sockets.size, 1, 'all six requests on one client connection')
      const seen1 = c.upstreams.get(P1)!.requests.slice(before.p1)
      const seen2 = c.upstreams.get(P2)!.requests.slice(before.p2)
      st.equal(seen1.length, 3)
      st.equal(seen2.length, 3)
      st.ok(
        seen1.every((r) => r.url.includes(P1)),
        "runner-1 saw only P1's requests",
      )
      st.ok(
        seen2.every((r) => r.url.includes(P2)),
        "runner-2 saw only P2's requests",
      )

      // Pipelined: both requests in one write; each still goes to its own project.
      const res = parseResponses(
        await exchange(
          c.http,
          request('GET', `/${P1}/port/${port1}/pipe1`, [
            ['Host', 'h'],
            ['Authorization', `Bearer ${alice}`],
          ]) +
            request('GET', `/${P2}/port/${port2}/pipe2`, [
              ['Host', 'h'],
              ['Authorization', `Bearer ${alice}`],
              ['Connection', 'close'],
            ]),
        ),
      )
      st.same(
        res.map((r) => r.status),
        [200, 200],
      )
      st.same(
        res.map((r) => (JSON.parse(r.body) as { project: string }).project),
        [P1, P2],
      )
    },
  )

  await tt.test(
    'headers: hopgate credentials and client forwarding headers never reach the project',
    async (st) => {
      const n = c.all.length
      const res = parseResponses(
        await exchange(
          c.http,
          request('GET', `/${P1}/port/${port1}/hdr`, [
            ['Host', 'edge.example'],
            ['Cookie', `hopgate_session=${alice}; theme=dark; other=1`],
            ['Authorization', 'Basic dXNlcjpwYXNz'],
            ['X-Forwarded-For', '6.6.6.6'],
            ['X-Forwarded-Host', 'evil.example'],
            ['X-Forwarded-Proto', 'https'],
            ['Forwarded', 'for=6.6.6.6'],
            ['X-Hopgate-Account', 'root'],
            ['X_Hopgate_Account', 'root'],
            ['X-Real_IP', '6.6.6.6'],
            ['Connection', 'keep-alive, X-Drop-Me'],
            ['X-Drop-Me', 'secret'],
            ['Keep-Alive', 'timeout=100'],
            ['TE', 'trailers'],
            ['Proxy-Authorization', 'Basic eA=='],
            ['X-Keep', 'yes'],
          ]) +
            request('GET', `/${P1}/port/${port1}/x`, [
              ['Host', 'h'],
              ['Connection', 'close'],
            ]),
        ),
      )
      st.equal(res[0]?.status, 200, 'authenticated by the cookie')
      st.equal(
        res[1]?.status,
        401,
        'the next request on the connection has no credentials of its own',
      )
      const rec = c.all.slice(n).find((r) => r.url.endsWith('/hdr'))!
      const h = (name: string): string[] => rawValues(rec.rawHeaders, name)
      st.same(h('cookie'), ['theme=dark; other=1'], 'only the hopgate cookie is removed')
      st.same(h('authorization'), ['Basic dXNlcjpwYXNz'], "the project's own auth header passes")
      st.same(h('x-forwarded-for'), ['127.0.0.1'])
      st.same(h('x-forwarded-proto'), ['http'])
      st.same(h('x-forwarded-host'), ['edge.example'])
      st.same(h('x-hopgate-account'), ['alice'])
      st.same(h('host'), ['edge.example'])
      st.same(h('x-keep'), ['yes'])
      for (const gone of [
        'forwarded',
        'x_hopgate_account',
        'x-real_ip',
        'x-drop-me',
        'keep-alive',
        'te',
        'proxy-authorization',
      ]) {
        st.same(h(gone), [], `${gone} removed`)
      }
      const viaBearer = c.all.length
      await fetch(c.url(P1, '/bearer'), { headers: bearer })
      st.same(
        rawValues(c.all[viaBearer]!.rawHeaders, 'authorization'),
        [],
        'the hopgate bearer header is removed',
      )
    },
  )

  await tt.test('one-time link: redirect to the clean URL with an HttpOnly cookie', async (st) => {
    const carol = c.token('carol')
    await c.edge.access.grant(P1, 'carol')
    const link = c.url(P1, `/page?a=1&hopgate_token=${carol}&b=2`)
    const n = c.all.length
    const r = await fetch(link, { redirect: 'manual' })
    st.equal(r.status, 303)
    st.equal(
      r.headers.get('location'),
      `/${P1}/port/${port1}/page?a=1&b=2`,
      'token gone from the URL',
    )
    const cookie = r.headers.get('set-cookie') ?? ''
    st.match(
      cookie,
      new RegExp(
        `^hopgate_session=${carol.replace(/\./g, '\\.')}; Path=/${P1}/; Max-Age=\\d+; HttpOnly; SameSite=Lax$`,
      ),
    )
    st.equal(c.all.length, n, 'the redirect itself reaches no project')
    const page = await fetch(`http://${c.http}${r.headers.get('location')}`, {
      headers: { cookie: `hopgate_session=${carol}` },
    })
    st.match(await page.json(), { project: P1, url: `/${P1}/port/${port1}/page?a=1&b=2` })
    const again = await fetch(link, { redirect: 'manual', headers: { accept: 'application/json' } })
    st.equal(again.status, 401, 'the link works once')
    st.match(await again.json(), { error: { code: 'HOPGATE_ERR_TOKEN_REPLAYED' } })
    const sameBrowser = await fetch(link, {
      redirect: 'manual',
      headers: { cookie: `hopgate_session=${carol}` },
    })
    st.equal(sameBrowser.status, 303, 'the same browser (with the cookie) may open it again')
    st.equal(sameBrowser.headers.get('set-cookie'), null, 'without a new cookie')
    const post = await fetch(c.url(P1, `/x?hopgate_token=${c.token('carol')}`), {
      method: 'POST',
      redirect: 'manual',
    })
    st.equal(post.status, 400, 'a token in the query of a POST is refused')
    const stolen = await fetch(c.url(P2, '/x'), {
      headers: { cookie: `hopgate_session=${carol}`, accept: 'application/json' },
    })
    st.equal(stolen.status, 403, "carol's cookie on a project she is not on")
  })

  await tt.test('errors: status, code, JSON and HTML', async (st) => {
    const cases: Array<[string, string, Record<string, string>, number, string]> = [
      ['no credentials', c.url(P1, '/'), {}, 401, 'HOPGATE_ERR_HTTP_UNAUTHENTICATED'],
      [
        'garbage token',
        c.url(P1, '/'),
        { authorization: 'Bearer hgu1.x.y' },
        401,
        'HOPGATE_ERR_TOKEN_MALFORMED',
      ],
      [
        'expired token',
        c.url(P1, '/'),
        {
          authorization: `Bearer ${c.tokens.mint({ account: 'alice', ttlMs: 1000, now: Date.now() - 10_000 }).token}`,
        },
        401,
        'HOPGATE_ERR_TOKEN_EXPIRED',
      ],
      [
        'token of a non-collaborator',
        c.url(P1, '/'),
        { authorization: `Bearer ${c.token('mallory')}` },
        403,
        'HOPGATE_ERR_HTTP_FORBIDDEN',
      ],
      [
        'port the runner does not allow',
        `http://${c.http}/${P1}/port/1/`,
        bearer,
        403,
        'HOPGATE_ERR_OPEN_REFUSED',
      ],
      [
        'upstream closes without answering',
        c.url(P1, '/close'),
        bearer,
        502,
        'HOPGATE_ERR_HTTP_UPSTREAM_FAILED',
      ],
      [
        'upstream never answers',
        c.url(P1, '/slow'),
        bearer,
        504,
        'HOPGATE_ERR_HTTP_UPSTREAM_TIMEOUT',
      ],
      [
        'bad target',
        `http://${c.http}/${P1.toUpperCase()}/port/1/`,
        bearer,
        400,
        'HOPGATE_ERR_HTTP_BAD_TARGET',
      ],
    ]
    await c.edge.access.grant(P3, 'alice')
    cases.push([
      'project no runner hosts',
      `http://${c.http}/${P3}/port/80/`,
      bearer,
      404,
      'HOPGATE_ERR_OPEN_UNKNOWN_PROJECT',
    ])
    for (const [what, url, headers, status, code] of cases) {
      const j = await fetch(url, { headers: { ...headers, accept: 'application/json' } })
      st.equal(j.status, status, `${what}: ${status}`)
      st.match(j.headers.get('content-type'), /^application\/json/)
      st.match(await j.json(), { error: { code, status } }, `${what}: JSON names ${code}`)
      const h = await fetch(url, { headers: { ...headers, accept: 'text/html' } })
      st.match(h.headers.get('content-type'), /^text\/html/)
      const html = await h.text()
      st.match(html, new RegExp(`<h1>${status} `), `${what}: HTML page`)
      st.match(html, code)
    }
    // 503 + Retry-After: the route is moving.
    const route = (await c.edge.store.getRoute(P2))!
    const moving = await c.edge.store.casRoute(P2, route.epoch, {
      runner: route.runner,
      state: 'moving',
    })
    const m = await fetch(c.url(P2, '/'), { headers: { ...bearer, accept: 'application/json' } })
    st.equal(m.status, 503)
    st.equal(m.headers.get('retry-after'), '5')
    st.match(await m.json(), { error: { code: 'HOPGATE_ERR_ROUTE_MOVING' } })
    await c.edge.store.casRoute(P2, moving.epoch, { runner: route.runner, state: 'active' })
    const back = await fetch(c.url(P2, '/back'), { headers: bearer })
    st.equal(back.status, 200, 'served again under the new epoch')
    st.ok(c.edge.http!.proxy.poolCount >= 2, 'pools exist per (project, port, epoch)')
    const up = await fetch(c.url(P1, '/after-errors'), { headers: bearer })
    st.equal(up.status, 200, 'the edge still answers after every error')
  })

  await tt.test('ACL: admin API and CLI; a revoke takes effect on the next request', async (st) => {
    const dave = c.token('dave')
    const get = async (): Promise<number> =>
      (await fetch(c.url(P1, '/acl'), { headers: { authorization: `Bearer ${dave}` } })).status
    st.equal(await get(), 403, 'not yet a collaborator (a deny is now cached)')
    const granted = await run(['acl', 'grant', P1, 'dave', '--admin', admin, '--json'])
    st.equal(granted.code, 0, granted.stderr)
    st.match(JSON.parse(granted.stdout), {
      project: P1,
      account: 'dave',
      collaborator: true,
      changed: true,
    })
    st.equal(await get(), 200, 'the grant is seen at once despite the cached deny')
    st.equal(await get(), 200, 'and cached')
    const list = (await (await fetch(`http://${admin}/v1/acl/${P1}`)).json()) as {
      accounts: string[]
    }
    st.same(list.accounts, ['alice', 'carol', 'dave'], 'GET /v1/acl/<project>')
    const revoked = await fetch(`http://${admin}/v1/acl/${P1}/dave`, { method: 'DELETE' })
    st.match(await revoked.json(), { collaborator: false, changed: true })
    st.equal(await get(), 403, 'the revoke is seen on the very next request')
    const bad = await fetch(`http://${admin}/v1/acl/${P1}/NOT-VALID`, { method: 'PUT' })
    st.equal(bad.status, 400)
    const minted = await run([
      'token',
      'user',
      '--account',
      'erin',
      '--ttl',
      '10m',
      '--json',
      '--state-dir',
      c.stateDir,
    ])
    st.equal(minted.code, 0, minted.stderr)
    const { token, expiresAt } = JSON.parse(minted.stdout) as { token: string; expiresAt: string }
    st.ok(Math.abs(Date.parse(expiresAt) - Date.now() - 600_000) < 10_000, 'expiresAt is ttl away')
    await c.edge.access.grant(P2, 'erin')
    const r = await fetch(c.url(P2, '/cli'), { headers: { authorization: `Bearer ${token}` } })
    st.equal(r.status, 200, 'a token from `hopgate token user` is accepted by the edge')
    const usage = await run(['token', 'user', '--account', 'Bad Id', '--state-dir', c.stateDir])
    st.equal(usage.code, 2, 'a bad account id is a usage error')
  })
})
