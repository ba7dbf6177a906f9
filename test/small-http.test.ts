// The shared lifecycle of the small control-plane HTTP listeners (shared/small-http.ts), over
// real loopback sockets: it serves, close() does not wait for a request that is never answered
// (a stuck scrape must not hold an agent or edge shutdown), and a taken port is a listen error.
import t from 'tap'
import http from 'node:http'
import { startSmallHttp } from '../shared/small-http.js'

t.test('serves, and close() drops a request that is never answered', async (tt) => {
  let held = 0
  const s = await startSmallHttp({ host: '127.0.0.1', port: 0 }, (req, res) => {
    if (req.url === '/hang') {
      held++
      return // never answered
    }
    res.end('ok')
  })
  const base = `http://127.0.0.1:${s.address.port}`
  tt.equal(await (await fetch(`${base}/`)).text(), 'ok', 'answers')
  const hung = new Promise<string>((resolve) => {
    const req = http.get(`${base}/hang`, () => resolve('answered'))
    req.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'))
  })
  while (held === 0) await new Promise((r) => setTimeout(r, 5))
  let closed = false
  const closing = s.close().then(() => (closed = true))
  tt.equal(await hung, 'ECONNRESET', 'the unanswered request is cut')
  await closing
  tt.ok(closed, 'close() resolved with the request still unanswered')
  tt.notOk(s.server.listening, 'no longer listening')
})

t.test('a taken port rejects', async (tt) => {
  const a = await startSmallHttp({ host: '127.0.0.1', port: 0 }, (_req, res) => res.end())
  tt.teardown(() => a.close())
  await tt.rejects(
    startSmallHttp({ host: '127.0.0.1', port: a.address.port }, (_req, res) => res.end()),
    { code: 'EADDRINUSE' },
  )
})
