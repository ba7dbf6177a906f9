// The malformed-request corpus against a real edge: every hostile target from
// fixtures/targets.txt on the wire, then smuggling (CL/TE), header floods and oversize heads,
// duplicate Host, absolute and authority forms, h2c, an HTTP/2 preface, pipelined requests for
// two projects (one not allowed) on one connection, a stolen cookie. Each vector goes on its own
// connection; the recording runners prove which requests reached them (only the allowed ones).
// Then slowloris heads and slow bodies are cut at the timeouts while a probe keeps getting 200s.
import t from 'tap'
import net from 'node:net'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { startHttpCluster, P1, P2 } from './_cluster.js'
import { exchange, parseResponses, request } from './_raw.js'

const KEY = 'dGhlIHNhbXBsZSBub25jZQ=='

interface Vector {
  name: string
  bytes: string
  /** Statuses in order; several allowed values for one response as an array. */
  expect: Array<number | number[]>
  /** Requests the runner of P1 must see for this vector (P2's must always see none). */
  p1Hits?: number
}

t.test('malformed-request corpus', async (tt) => {
  const c = await startHttpCluster(tt, {
    limits: { headersTimeoutMs: 1000, requestTimeoutMs: 2000, connectionsCheckingIntervalMs: 100 },
  })
  await c.edge.access.grant(P1, 'alice')
  const alice = c.token('alice')
  const p1 = c.upstreams.get(P1)!
  const p2 = c.upstreams.get(P2)!
  const ok = `/${P1}/port/${p1.port}/ok`
  const toP2 = `/${P2}/port/${p2.port}/x`
  const A: [string, string] = ['Authorization', `Bearer ${alice}`]
  const H: [string, string] = ['Host', 'edge.example']
  const vectors: Vector[] = []

  // 1. Every refused target of the parser's fixtures, on the wire, with valid credentials.
  const fixtures = readFileSync(new URL('./fixtures/targets.txt', import.meta.url), 'utf8')
    .split('\n')
    .filter((l) => /^(400|414) /.test(l))
  for (const line of fixtures) {
    const [status, hex, ...label] = line.split(' ')
    const target = hex === '-' ? '' : Buffer.from(hex!, 'hex').toString('latin1')
    // The template targets name a port the runner allows, so only the target itself is wrong.
    const t2 = target.replaceAll('/port/80', `/port/${p1.port}`)
    vectors.push({
      name: `target: ${label.join(' ').replace(/^# /, '')}`,
      bytes: request('GET', t2, [H, A]),
      expect: [Number(status)],
    })
  }

  // 2. Heads, framing and smuggling.
  const v = (name: string, bytes: string, expect: Vector['expect'], p1Hits = 0): void => {
    vectors.push({ name, bytes, expect, p1Hits })
  }
  v('control: a valid request', request('GET', ok, [H, A]), [200], 1)
  v('duplicate Host', request('GET', ok, [H, ['Host', 'other'], A]), [400])
  v('duplicate Host, other case', request('GET', ok, [H, ['host', 'edge.example'], A]), [400])
  v('no Host', request('GET', ok, [A]), [400])
  v(
    'CL and TE together (CL.TE smuggling)',
    request('POST', ok, [H, A, ['Content-Length', '4'], ['Transfer-Encoding', 'chunked']]) +
      `0\r\n\r\nGET ${toP2} HTTP/1.1\r\nHost: h\r\n\r\n`,
    [400],
  )
  v(
    'TE and CL together (TE.CL smuggling)',
    request('POST', ok, [H, A, ['Transfer-Encoding', 'chunked'], ['Content-Length', '40']]) +
      `5\r\nhello\r\n0\r\n\r\nGET ${toP2} HTTP/1.1\r\n\r\n`,
    [400],
  )
  v(
    'two different Content-Length',
    request('POST', ok, [H, A, ['Content-Length', '1'], ['Content-Length', '2']]) + 'xy',
    [400],
  )
  v('Content-Length with a sign', request('POST', ok, [H, A, ['Content-Length', '-1']]), [400])
  v('Content-Length not a number', request('POST', ok, [H, A, ['Content-Length', '1e3']]), [400])
  v(
    'Transfer-Encoding not chunked last',
    request('POST', ok, [H, A, ['Transfer-Encoding', 'chunked, identity']]),
    [400],
  )
  v(
    'Transfer-Encoding unknown',
    request('POST', ok, [H, A, ['Transfer-Encoding', 'xchunked']]),
    [400],
  )
  v(
    'obs-fold header',
    `GET ${ok} HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer ${alice}\r\nX-A: 1\r\n  2\r\n\r\n`,
    [400],
  )
  v(
    'space before colon',
    `GET ${ok} HTTP/1.1\r\nHost : h\r\nAuthorization: Bearer ${alice}\r\n\r\n`,
    [400],
  )
  v('NUL in a header value', request('GET', ok, [H, A, ['X-A', 'a\x00b']]), [400])
  v('CR in a header value', `GET ${ok} HTTP/1.1\r\nHost: h\r\nX-A: a\rb\r\n\r\n`, [400])
  v('header name with a space', request('GET', ok, [H, A, ['X A', '1']]), [400])
  v(
    '101 headers (flood)',
    request('GET', ok, [
      H,
      A,
      ...Array.from({ length: 99 }, (_, i): [string, string] => [`X-F${i}`, 'v']),
    ]),
    [400],
  )
  v(
    '20 KiB header (oversize head)',
    request('GET', ok, [H, A, ['X-Big', 'b'.repeat(20_000)]]),
    [431],
  )
  v('5 KiB target', request('GET', ok + 'a'.repeat(5000), [H, A]), [414])
  v('absolute form to another project', request('GET', `http://edge.example${toP2}`, [H, A]), [400])
  v('absolute form, HTTP/1.0', `GET http://edge.example${ok} HTTP/1.0\r\n\r\n`, [400])
  v('CONNECT authority form', request('CONNECT', 'runner.internal:22', [H, A]), [400])
  v('OPTIONS asterisk form', request('OPTIONS', '*', [H, A]), [400])
  v('lowercase method', request('get', ok, [H, A]), [400])
  v('HTTP/2 preface', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', [[400, 505]])
  v('unknown HTTP version', `GET ${ok} HTTP/3.7\r\nHost: h\r\n\r\n`, [[400, 505]])
  v(
    'Upgrade: h2c',
    request('GET', ok, [
      H,
      A,
      ['Connection', 'Upgrade, HTTP2-Settings'],
      ['Upgrade', 'h2c'],
      ['HTTP2-Settings', 'AAMAAABkAAQCAAAAAAIAAAAA'],
    ]),
    [400],
  )
  v(
    'upgrade with a body',
    request('GET', ok, [
      H,
      A,
      ['Connection', 'Upgrade'],
      ['Upgrade', 'websocket'],
      ['Sec-WebSocket-Key', KEY],
      ['Sec-WebSocket-Version', '13'],
      ['Content-Length', '5'],
    ]) + 'hello',
    [400],
  )
  v(
    'WebSocket upgrade without auth',
    request('GET', ok, [
      H,
      ['Connection', 'Upgrade'],
      ['Upgrade', 'websocket'],
      ['Sec-WebSocket-Key', KEY],
      ['Sec-WebSocket-Version', '13'],
    ]),
    [401],
  )
  v(
    'runner answers 426 to an upgrade',
    request('GET', `/${P1}/port/${p1.port}/ws426`, [
      H,
      A,
      ['Connection', 'Upgrade'],
      ['Upgrade', 'websocket'],
      ['Sec-WebSocket-Key', KEY],
      ['Sec-WebSocket-Version', '13'],
    ]),
    [426],
    1,
  )
  v('two hopgate_token params', request('GET', `${ok}?hopgate_token=a&hopgate_token=b`, [H]), [400])
  v(
    'stolen cookie on another project',
    request('GET', toP2, [H, ['Cookie', `hopgate_session=${alice}`]]),
    [403],
  )
  v('bearer token for a project it is not on', request('GET', toP2, [H, A]), [403])
  v(
    'pipelined: P1 then P2 (not allowed) on one connection',
    request('GET', ok, [H, A]) + request('GET', toP2, [H, A]),
    [200, 403],
    1,
  )
  v(
    'pipelined: P2 (not allowed) then P1',
    request('GET', toP2, [H, A]) + request('GET', ok, [H, A]),
    [403, 200],
    1,
  )
  v(
    'pipelined: P1 with credentials, then P1 without',
    request('GET', ok, [H, A]) + request('GET', ok, [H]),
    [200, 401],
    1,
  )
  v(
    'pipelined: valid, then a smuggled bad target',
    request('GET', ok, [H, A]) + request('GET', `/${P1}/port/${p1.port}/%2e%2e/x`, [H, A]),
    [200, 400],
    1,
  )

  tt.ok(vectors.length >= 60, `${vectors.length} vectors`)
  for (const vec of vectors) {
    const before1 = p1.requests.length + p1.upgrades.length
    const before2 = p2.requests.length + p2.upgrades.length
    const got = parseResponses(await exchange(c.http, vec.bytes, vec.expect.length)).map(
      (r) => r.status,
    )
    const fits =
      got.length === vec.expect.length &&
      vec.expect.every((e, i) => (Array.isArray(e) ? e.includes(got[i]!) : e === got[i]))
    tt.ok(fits, `${vec.name}: ${JSON.stringify(got)}`)
    tt.equal(
      p1.requests.length + p1.upgrades.length - before1,
      vec.p1Hits ?? 0,
      `${vec.name}: P1's runner hits`,
    )
    tt.equal(p2.requests.length + p2.upgrades.length, before2, `${vec.name}: P2's runner untouched`)
  }
  tt.equal(p2.requests.length + p2.upgrades.length, 0, "P2's runner never saw a request")
  const probe = await fetch(`http://${c.http}${ok}`, {
    headers: { authorization: `Bearer ${alice}` },
  })
  tt.equal(probe.status, 200, 'the edge is still up')

  await tt.test(
    'slow clients are cut at the timeouts; a probe keeps getting answers',
    async (st) => {
      const slow: net.Socket[] = []
      const closed: Promise<unknown>[] = []
      for (let i = 0; i < 10; i++) {
        const s = net.connect(c.edge.http!.address.port, '127.0.0.1')
        s.on('error', () => {})
        s.on('data', () => {})
        await once(s, 'connect')
        closed.push(once(s, 'close'))
        slow.push(s)
        if (i % 2 === 0) {
          // Slowloris: a head that never ends, one header line at a time.
          s.write(`GET ${ok} HTTP/1.1\r\nHost: h\r\n`)
        } else {
          // Slow body: a complete, authorised head, then a trickle.
          s.write(request('POST', ok, [H, A, ['Content-Length', '100000']]))
        }
      }
      const drip = setInterval(() => {
        for (const s of slow)
          if (!s.destroyed) s.write(slow.indexOf(s) % 2 === 0 ? 'X-Drip: 1\r\n' : 'x')
      }, 200)
      st.teardown(() => clearInterval(drip))
      let probes = 0
      let allClosed = false
      void Promise.all(closed).then(() => (allClosed = true))
      // Bounded by time, not by a probe count: a fast machine answers hundreds of probes before
      // the 2 s request timeout cuts the slow bodies.
      const deadline = Date.now() + 20_000
      while (!allClosed && Date.now() < deadline) {
        const r = await fetch(`http://${c.http}${ok}`, {
          headers: { authorization: `Bearer ${alice}` },
        })
        st.equal(r.status, 200, 'probe answered while slow clients hold connections')
        await r.arrayBuffer()
        probes++
        await new Promise((r) => setTimeout(r, 10))
      }
      clearInterval(drip)
      st.ok(allClosed, 'every slow connection was closed by the edge')
      st.ok(probes >= 1, `${probes} probes answered`)
    },
  )
})
