// Behaviour of a session pair, named after hashicorp/yamux's session_test.go, each run over an
// in-memory pair, loopback TCP and mutual TLS 1.3.
import t from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { pipeline } from 'node:stream/promises'
import { eachTransport, nextStream, readAll, sessionPair } from '../helpers/yamux-pair.js'
import { GoAwayCode, INITIAL_STREAM_WINDOW, type YamuxStream } from '../../shared/yamux/index.js'
import { isHopgateError } from '../../shared/errors.js'

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

function echo(stream: YamuxStream): void {
  pipeline(stream, stream).catch(() => {})
}

eachTransport('ping', async (tt, maker) => {
  const p = await sessionPair(maker)
  tt.teardown(() => p.close())
  const rtt = await p.client.ping()
  tt.ok(rtt >= 0 && rtt < 2000, `client ping rtt ${rtt} ms`)
  const rtt2 = await p.server.ping()
  tt.ok(rtt2 >= 0, 'server can ping too')
  tt.ok(p.client.rttMs > 0, 'rtt recorded on the session')
  await p.assertQuiescent(tt)
})

eachTransport('accept: streams open both ways with the right id parity', async (tt, maker) => {
  const p = await sessionPair(maker)
  tt.teardown(() => p.close())
  p.server.on('stream', echo)
  p.client.on('stream', echo)
  const fromClient = [p.client.openStream(), p.client.openStream()]
  const fromServer = [p.server.openStream(), p.server.openStream()]
  tt.same(
    fromClient.map((s) => s.id),
    [1, 3],
    'client ids are odd, from 1',
  )
  tt.same(
    fromServer.map((s) => s.id),
    [2, 4],
    'server ids are even, from 2',
  )
  for (const s of [...fromClient, ...fromServer]) {
    s.end(`hello ${s.id}`)
    tt.equal(String(await readAll(s)), `hello ${s.id}`, `echo on stream ${s.id}`)
  }
  await p.assertQuiescent(tt)
})

eachTransport('send data small', async (tt, maker) => {
  const p = await sessionPair(maker)
  tt.teardown(() => p.close())
  const streams = 4
  const messages = 500
  p.server.on('stream', (s) => {
    void readAll(s).then((data) => s.end(sha(data)))
  })
  const results = await Promise.all(
    Array.from({ length: streams }, async () => {
      const s = p.client.openStream()
      const sent: Buffer[] = []
      for (let i = 0; i < messages; i++) {
        const msg = randomBytes(1 + (i % 100))
        sent.push(msg)
        if (!s.write(msg)) await once(s, 'drain')
      }
      s.end()
      return [sha(Buffer.concat(sent)), String(await readAll(s))]
    }),
  )
  for (const [want, got] of results) tt.equal(got, want, 'server saw every byte in order')
  await p.assertQuiescent(tt)
})

eachTransport('send data large: 16 MiB each way at once, SHA-256 checked', async (tt, maker) => {
  const p = await sessionPair(maker)
  tt.teardown(() => p.close())
  const size = 16 * 1024 * 1024
  const up = randomBytes(size)
  const down = randomBytes(size)
  p.server.on('stream', (s) => {
    s.end(down)
    void readAll(s).then((data) => {
      tt.equal(data.length, size, 'server received all bytes')
      tt.equal(sha(data), sha(up), 'upload intact')
    })
  })
  const s = p.client.openStream()
  s.end(up)
  const got = await readAll(s)
  tt.equal(got.length, size, 'client received all bytes')
  tt.equal(sha(got), sha(down), 'download intact')
  await p.assertQuiescent(tt)
})

eachTransport('half close: the other direction keeps flowing after FIN', async (tt, maker) => {
  const p = await sessionPair(maker)
  tt.teardown(() => p.close())
  const serverSide = nextStream(p.server)
  const s = p.client.openStream()
  s.end('request')
  const srv = await serverSide
  const req = await readAll(srv)
  tt.equal(String(req), 'request', 'server read until FIN')
  tt.equal(srv.remoteFin, true, 'server saw FIN')
  tt.notOk(srv.localFin, 'server side still open')
  // The server can still send for as long as it likes after the client's FIN.
  for (let i = 0; i < 10; i++) srv.write(`part${i};`)
  srv.end()
  const reply = await readAll(s)
  tt.equal(
    String(reply),
    Array.from({ length: 10 }, (_, i) => `part${i};`).join(''),
    'reply intact',
  )
  await p.assertQuiescent(tt)
})

eachTransport('reset: destroy() sends RST and the peer sees a typed error', async (tt, maker) => {
  const p = await sessionPair(maker)
  tt.teardown(() => p.close())
  const serverSide = nextStream(p.server)
  const s = p.client.openStream()
  s.write('x')
  const srv = await serverSide
  const err = once(srv, 'error')
  s.destroy()
  const [e] = (await err) as [Error]
  tt.ok(isHopgateError(e, 'HOPGATE_ERR_YAMUX_STREAM_RESET'), `peer error code ${(e as any).code}`)
  await p.assertQuiescent(tt)
})

eachTransport('backlog exceeded: open waits for a slot, openStream refuses', async (tt, maker) => {
  const p = await sessionPair(maker, { config: { acceptBacklog: 8 } })
  tt.teardown(() => p.close())
  // The server accepts nothing yet (pull mode): opens pile up unacknowledged.
  const opened = []
  for (let i = 0; i < 8; i++) opened.push(p.client.openStream())
  tt.throws(() => p.client.openStream(), { code: 'HOPGATE_ERR_YAMUX_BACKLOG_FULL' })
  let ninthOpened = false
  const ninth = p.client.open().then((s) => {
    ninthOpened = true
    return s
  })
  await new Promise((r) => setTimeout(r, 50))
  tt.notOk(ninthOpened, 'ninth open waits while the backlog is full')
  const first = await p.server.accept()
  tt.equal(first.id, 1, 'accepted in order')
  const s9 = await ninth
  tt.equal(s9.id, 17, 'ninth open went through once a slot freed')
  for (const s of [...opened, s9]) s.destroy()
  first.destroy()
  // Streams still queued for accept were reset by the client; accept the rest to drain.
  await p.assertQuiescent(tt)
})

eachTransport('go away: no new streams either way, existing ones finish', async (tt, maker) => {
  const p = await sessionPair(maker)
  tt.teardown(() => p.close())
  p.server.on('stream', echo)
  const live = p.client.openStream()
  live.write('before;')
  await once(live, 'data')
  const goaway = once(p.client, 'goaway')
  p.server.goAway()
  const [code] = (await goaway) as [number]
  tt.equal(code, GoAwayCode.Normal, 'client saw GoAway(normal)')
  tt.throws(() => p.client.openStream(), { code: 'HOPGATE_ERR_YAMUX_REMOTE_GOAWAY' })
  await tt.rejects(p.client.open(), { code: 'HOPGATE_ERR_YAMUX_REMOTE_GOAWAY' })
  tt.throws(() => p.server.openStream(), { code: 'HOPGATE_ERR_YAMUX_GOING_AWAY' })
  live.end('after')
  tt.equal(String(await readAll(live)), 'after', 'existing stream still works after GoAway')
  await p.assertQuiescent(tt)
})

eachTransport('many concurrent streams: 300 streams x 64 KiB echoed', async (tt, maker) => {
  const p = await sessionPair(maker)
  tt.teardown(() => p.close())
  p.server.on('stream', echo)
  let ok = 0
  await Promise.all(
    Array.from({ length: 300 }, async () => {
      const s = await p.client.open()
      const data = randomBytes(64 * 1024)
      s.end(data)
      if (sha(await readAll(s)) === sha(data)) ok++
    }),
  )
  tt.equal(ok, 300, 'every stream echoed intact')
  await p.assertQuiescent(tt)
})

eachTransport(
  'slow reader: the sender stops at the window, nothing buffers past it',
  async (tt, maker) => {
    const p = await sessionPair(maker)
    tt.teardown(() => p.close())
    const serverSide = nextStream(p.server)
    const s = p.client.openStream()
    const total = 4 * 1024 * 1024
    const data = randomBytes(total)
    // Write without waiting for drain: the writable buffer grows, but the wire is paced by the window.
    for (let off = 0; off < total; off += 64 * 1024) s.write(data.subarray(off, off + 64 * 1024))
    s.end()
    const srv = await serverSide
    srv.pause()
    await new Promise((r) => setTimeout(r, 200))
    const writtenUntilBlocked = srv.received
    tt.ok(
      srv.received <= INITIAL_STREAM_WINDOW,
      `receiver holds ${srv.received} bytes, at most one initial window (${INITIAL_STREAM_WINDOW})`,
    )
    tt.equal(s.sendWindow, 0, 'sender has spent its window and waits')
    tt.ok(s.writableLength > 0, 'the rest waits in the sender, not in the receiver')
    srv.resume()
    const got = await readAll(srv)
    tt.equal(sha(got), sha(data), 'all data arrives once the reader reads')
    tt.ok(writtenUntilBlocked > 0, 'some data flowed before the pause')
    srv.end()
    if (!s.writableFinished) await once(s, 'finish')
    s.resume()
    await p.assertQuiescent(tt)
  },
)

eachTransport(
  'write deadline: a write blocked on the window times out and resets',
  async (tt, maker) => {
    const p = await sessionPair(maker)
    tt.teardown(() => p.close())
    const serverSide = nextStream(p.server)
    const s = p.client.openStream()
    s.setWriteTimeout(100)
    s.write(randomBytes(INITIAL_STREAM_WINDOW + 1024))
    const srv = await serverSide
    srv.pause()
    const srvErr = once(srv, 'error')
    const [err] = (await once(s, 'error')) as [Error]
    tt.ok(isHopgateError(err, 'HOPGATE_ERR_YAMUX_WRITE_TIMEOUT'), 'writer gets WRITE_TIMEOUT')
    const [peerErr] = (await srvErr) as [Error]
    tt.ok(isHopgateError(peerErr, 'HOPGATE_ERR_YAMUX_STREAM_RESET'), 'reader sees the reset')
    await p.assertQuiescent(tt)
  },
)

eachTransport('open timeout: an open the peer never acknowledges is reset', async (tt, maker) => {
  const p = await sessionPair(maker, { config: { streamOpenTimeoutMs: 100 } })
  tt.teardown(() => p.close())
  const s = p.client.openStream()
  const [err] = (await once(s, 'error')) as [Error]
  tt.ok(isHopgateError(err, 'HOPGATE_ERR_YAMUX_OPEN_TIMEOUT'), 'OPEN_TIMEOUT')
  // The server had queued it for accept; the RST took it out again.
  await p.assertQuiescent(tt)
})

eachTransport('close deadline: close() resets when the peer never ends', async (tt, maker) => {
  const p = await sessionPair(maker)
  tt.teardown(() => p.close())
  const serverSide = nextStream(p.server)
  const s = p.client.openStream()
  s.on('error', () => {})
  s.write('hi')
  const srv = await serverSide
  srv.on('error', () => {})
  srv.resume()
  await tt.rejects(s.close({ timeoutMs: 100 }), { code: 'HOPGATE_ERR_YAMUX_CLOSE_TIMEOUT' })
  tt.ok(s.destroyed, 'stream destroyed')
  await p.assertQuiescent(tt)
})

eachTransport('close: graceful close() resolves once both sides ended', async (tt, maker) => {
  const p = await sessionPair(maker)
  tt.teardown(() => p.close())
  p.server.on('stream', echo)
  const s = p.client.openStream()
  s.write('bye')
  s.resume()
  await s.close()
  tt.ok(s.localFin && s.remoteFin, 'both FINs exchanged')
  await p.assertQuiescent(tt)
})

eachTransport('session close: streams end, the peer closes, nothing is left', async (tt, maker) => {
  const p = await sessionPair(maker)
  tt.teardown(() => p.close())
  p.server.on('stream', (s) => s.on('error', () => {}))
  const streams = Array.from({ length: 5 }, () => p.client.openStream())
  for (const s of streams) {
    s.on('error', () => {})
    s.write('x')
  }
  const serverClosed = once(p.server, 'close')
  p.client.close()
  await serverClosed
  tt.ok(p.server.closed, 'server session closed when the client closed')
  tt.ok(
    streams.every((s) => s.destroyed),
    'client streams destroyed',
  )
  tt.throws(() => p.client.openStream(), { code: 'HOPGATE_ERR_YAMUX_SESSION_SHUTDOWN' })
  await tt.rejects(p.client.ping(), { code: 'HOPGATE_ERR_YAMUX_SESSION_SHUTDOWN' })
  tt.equal(p.client.stats().timers, 0, 'no timers after close')
  tt.equal(p.server.stats().timers, 0, 'no timers on the peer after close')
})

t.test('window auto-tuning grows a fast stream past the initial window', async (tt) => {
  const { connPairs } = await import('../helpers/conn-pairs.js')
  const p = await sessionPair(
    connPairs.find((m) => m.name === 'tcp')!,
    {
      config: { maxStreamWindowBytes: 4 * 1024 * 1024 },
    },
  )
  tt.teardown(() => p.close())
  const serverSide = nextStream(p.server)
  const s = p.client.openStream()
  s.end(randomBytes(32 * 1024 * 1024))
  const srv = await serverSide
  await readAll(srv)
  tt.ok(srv.recvWindow > INITIAL_STREAM_WINDOW, `window grew to ${srv.recvWindow}`)
  tt.ok(srv.recvWindow <= 4 * 1024 * 1024, 'and stayed within maxStreamWindowBytes')
  srv.end()
  await p.assertQuiescent(tt)
})

eachTransport('close right after goAway still delivers the GoAway code', async (tt, maker) => {
  const p = await sessionPair(maker)
  tt.teardown(() => p.close())
  const seen = once(p.server, 'goaway') as Promise<[number]>
  p.client.goAway(GoAwayCode.ProtocolError)
  p.client.close()
  const [code] = await seen
  tt.equal(code, GoAwayCode.ProtocolError, 'the goAway() code, not lost to close()')
})
