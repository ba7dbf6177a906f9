// WebSocket through a real edge and agents with the `ws` client: 10,000 echoed messages, cookie
// auth, the per-project count and limit, the idle cut; refusals before anything reaches a runner
// (no credentials, h2c, bad key or version, POST, a body); and a runner answering 426, relayed as
// a plain response on a connection that never becomes a pipe.
import t from 'tap'
import { once } from 'node:events'
import type http from 'node:http'
import WebSocket from 'ws'
import { startHttpCluster, P1, until } from './_cluster.js'
import { exchange, headerOf, parseResponses, request } from './_raw.js'

const KEY = 'dGhlIHNhbXBsZSBub25jZQ=='

function refusedStatus(
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  const ws = new WebSocket(url, { headers })
  ws.on('error', () => {})
  return new Promise((resolve, reject) => {
    ws.once('open', () => reject(new Error('opened')))
    ws.once('unexpected-response', (_req, res: http.IncomingMessage) => {
      let body = ''
      res.on('data', (d: Buffer) => (body += d.toString()))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
  })
}

t.test('WebSocket ingress', async (tt) => {
  const c = await startHttpCluster(tt, {
    projects: [P1],
    limits: { wsIdleTimeoutMs: 1500, maxWebSocketsPerProject: 3 },
  })
  await c.edge.access.grant(P1, 'alice')
  const alice = c.token('alice')
  const port = c.upstreams.get(P1)!.port
  const wsUrl = `ws://${c.http}/${P1}/port/${port}/ws`
  const upgrades = (): number => c.upstreams.get(P1)!.upgrades.length

  await tt.test('10,000 messages echoed in order', async (st) => {
    const ws = new WebSocket(wsUrl, { headers: { authorization: `Bearer ${alice}` } })
    await once(ws, 'open')
    st.equal(c.edge.http!.websockets.count(P1), 1, 'counted for its project')
    const got: string[] = []
    ws.on('message', (d: Buffer) => got.push(d.toString()))
    const N = 10_000
    for (let i = 0; i < N; i += 500) {
      for (let j = i; j < i + 500; j++) ws.send(`m${j}`)
      await until(() => got.length >= i + 500, `echo of batch ${i}`)
    }
    st.equal(got.length, N)
    st.ok(
      got.every((m, i) => m === `m${i}`),
      'all 10,000 in order',
    )
    const up = c.upstreams.get(P1)!.upgrades.at(-1)!
    st.notOk(
      up.rawHeaders.some((h) => h.toLowerCase() === 'authorization'),
      'bearer removed',
    )
    ws.close()
    await once(ws, 'close')
    await until(() => c.edge.http!.websockets.count(P1) === 0, 'count released')
    st.pass('count back to 0 after close')
  })

  await tt.test('cookie auth; idle pipes are cut; the per-project limit', async (st) => {
    const ws = new WebSocket(wsUrl, { headers: { cookie: `hopgate_session=${alice}` } })
    await once(ws, 'open')
    ws.send('hi')
    const [m] = (await once(ws, 'message')) as [Buffer]
    st.equal(m.toString(), 'hi', 'echo with the session cookie')
    await once(ws, 'close')
    st.pass('an idle WebSocket is closed by the edge (wsIdleTimeoutMs)')

    const open: WebSocket[] = []
    for (let i = 0; i < 3; i++) {
      const w = new WebSocket(wsUrl, { headers: { authorization: `Bearer ${alice}` } })
      await once(w, 'open')
      open.push(w)
    }
    const over = await refusedStatus(wsUrl, {
      authorization: `Bearer ${alice}`,
      accept: 'application/json',
    })
    st.equal(over.status, 503, 'past maxWebSocketsPerProject')
    st.match(JSON.parse(over.body), { error: { code: 'HOPGATE_ERR_WS_LIMIT' } })
    for (const w of open) w.close()
    await until(() => c.edge.http!.websockets.count(P1) === 0, 'all released')
  })

  await tt.test("a revoked grant ends that account's open WebSockets at once", async (st) => {
    await c.edge.access.grant(P1, 'bob')
    const bob = new WebSocket(wsUrl, { headers: { authorization: `Bearer ${c.token('bob')}` } })
    const al = new WebSocket(wsUrl, { headers: { authorization: `Bearer ${alice}` } })
    await Promise.all([once(bob, 'open'), once(al, 'open')])
    const closed = once(bob, 'close')
    await c.edge.access.revoke(P1, 'bob')
    await closed
    st.pass("bob's WebSocket was closed by the edge")
    al.send('still here')
    const [m] = (await once(al, 'message')) as [Buffer]
    st.equal(m.toString(), 'still here', "alice's WebSocket on the same project is untouched")
    al.close()
    await until(() => c.edge.http!.websockets.count(P1) === 0, 'all released')
  })

  await tt.test('refused before any runner sees it', async (st) => {
    const before = upgrades()
    const none = await refusedStatus(wsUrl, { accept: 'application/json' })
    st.equal(none.status, 401, 'no credentials')
    st.match(JSON.parse(none.body), { error: { code: 'HOPGATE_ERR_HTTP_UNAUTHENTICATED' } })
    const other = await refusedStatus(wsUrl, { authorization: `Bearer ${c.token('mallory')}` })
    st.equal(other.status, 403, 'not a collaborator')
    const path = `/${P1}/port/${port}/ws`
    const auth: [string, string] = ['Authorization', `Bearer ${alice}`]
    const raw: Array<[string, string, number]> = [
      [
        'h2c',
        request('GET', path, [
          ['Host', 'h'],
          auth,
          ['Connection', 'Upgrade, HTTP2-Settings'],
          ['Upgrade', 'h2c'],
          ['HTTP2-Settings', 'AAMAAABkAAQCAAAAAAIAAAAA'],
        ]),
        400,
      ],
      [
        'no key',
        request('GET', path, [
          ['Host', 'h'],
          auth,
          ['Connection', 'Upgrade'],
          ['Upgrade', 'websocket'],
          ['Sec-WebSocket-Version', '13'],
        ]),
        400,
      ],
      [
        'short key',
        request('GET', path, [
          ['Host', 'h'],
          auth,
          ['Connection', 'Upgrade'],
          ['Upgrade', 'websocket'],
          ['Sec-WebSocket-Key', 'c2hvcnQ='],
          ['Sec-WebSocket-Version', '13'],
        ]),
        400,
      ],
      [
        'version 8',
        request('GET', path, [
          ['Host', 'h'],
          auth,
          ['Connection', 'Upgrade'],
          ['Upgrade', 'websocket'],
          ['Sec-WebSocket-Key', KEY],
          ['Sec-WebSocket-Version', '8'],
        ]),
        400,
      ],
      [
        'POST upgrade',
        request('POST', path, [
          ['Host', 'h'],
          auth,
          ['Connection', 'Upgrade'],
          ['Upgrade', 'websocket'],
          ['Sec-WebSocket-Key', KEY],
          ['Sec-WebSocket-Version', '13'],
          ['Content-Length', '0'],
        ]),
        400,
      ],
      [
        'upgrade with a body',
        request('GET', path, [
          ['Host', 'h'],
          auth,
          ['Connection', 'Upgrade'],
          ['Upgrade', 'websocket'],
          ['Sec-WebSocket-Key', KEY],
          ['Sec-WebSocket-Version', '13'],
          ['Content-Length', '5'],
        ]) + 'hello',
        400,
      ],
      [
        'token link on an upgrade',
        request('GET', `${path}?hopgate_token=${alice}`, [
          ['Host', 'h'],
          ['Connection', 'Upgrade'],
          ['Upgrade', 'websocket'],
          ['Sec-WebSocket-Key', KEY],
          ['Sec-WebSocket-Version', '13'],
        ]),
        400,
      ],
      [
        'bad target',
        request('GET', `/${P1}/port/${port}/../ws`, [
          ['Host', 'h'],
          auth,
          ['Connection', 'Upgrade'],
          ['Upgrade', 'websocket'],
          ['Sec-WebSocket-Key', KEY],
          ['Sec-WebSocket-Version', '13'],
        ]),
        400,
      ],
    ]
    for (const [what, bytes, status] of raw) {
      const [res] = parseResponses(await exchange(c.http, bytes))
      st.equal(res?.status, status, `${what}: ${status}`)
      st.ok(headerOf(res!, 'x-hopgate-error'), `${what}: typed code`)
    }
    st.equal(upgrades(), before, 'no refused upgrade reached the runner')
  })

  await tt.test(
    'a runner that answers 426 is relayed as a plain response, not a pipe',
    async (st) => {
      const before = upgrades()
      const r = await refusedStatus(`ws://${c.http}/${P1}/port/${port}/ws426`, {
        authorization: `Bearer ${alice}`,
      })
      st.equal(r.status, 426)
      st.equal(r.body, 'not for you\n', 'the body is relayed')
      st.equal(upgrades(), before + 1, 'the runner saw the handshake')
      const bytes = await exchange(
        c.http,
        request('GET', `/${P1}/port/${port}/ws426`, [
          ['Host', 'h'],
          ['Authorization', `Bearer ${alice}`],
          ['Connection', 'Upgrade'],
          ['Upgrade', 'websocket'],
          ['Sec-WebSocket-Key', KEY],
          ['Sec-WebSocket-Version', '13'],
        ]) + 'GET /after-426 HTTP/1.1\r\nHost: h\r\n\r\n',
      )
      const res = parseResponses(bytes)
      st.equal(res.length, 1, 'one response, then the edge closed: bytes after it were never piped')
      st.equal(res[0]?.status, 426)
      st.equal(headerOf(res[0]!, 'connection'), 'close')
      st.notOk(
        c.all.some((x) => x.url.includes('after-426')),
        'nothing after the 426 reached the runner',
      )
      st.equal(c.edge.http!.websockets.count(P1), 0, 'not counted as open')
    },
  )
})
