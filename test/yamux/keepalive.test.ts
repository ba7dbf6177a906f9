// Keepalive and the connection write deadline, driven by a ManualClock: no sleeping on timers,
// only event-loop turns for bytes to cross the transport (in-memory, TCP, TLS).
import t from 'tap'
import { once } from 'node:events'
import { ManualClock } from '../../shared/clock.js'
import { duplexPair } from '../helpers/duplex-pair.js'
import { eachTransport, testConfig } from '../helpers/yamux-pair.js'
import { Decoder, FrameType, Session, type FrameHeader } from '../../shared/yamux/index.js'
import type { HopgateError } from '../../shared/errors.js'

const turns = async (n = 5): Promise<void> => {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r))
}

/** Waits (in real time, for real I/O) until `cond` holds; fails after 2 s. */
async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 400 && !cond(); i++) await new Promise((r) => setTimeout(r, 5))
  if (!cond()) throw new Error('condition not reached in 2 s')
}

const kaConfig = {
  ...testConfig,
  keepAliveIntervalMs: 1000,
  keepAliveJitter: 0,
  pingTimeoutMs: 500,
}

eachTransport(
  'keepalive: pings go out every interval and answered pings keep the session',
  async (tt, maker) => {
    const clock = new ManualClock()
    const pair = await maker.make()
    const { a, b } = pair
    tt.teardown(() => pair.close())
    const client = new Session(a, { role: 'client', config: kaConfig, clock })
    const server = new Session(b, { role: 'server', config: { ...testConfig }, clock })
    tt.teardown(() => (client.close(), server.close()))
    for (let i = 0; i < 5; i++) {
      clock.advance(1000)
      tt.equal(client.stats().pendingPings, 1, `round ${i}: keepalive ping in flight`)
      await until(() => client.stats().pendingPings === 0)
      tt.equal(client.stats().pendingPings, 0, `round ${i}: answered`)
    }
    for (let i = 0; i < 10; i++) {
      clock.advance(1000)
      await until(() => client.stats().pendingPings === 0)
    }
    tt.notOk(client.closed, 'still open after 15 s of answered keepalives')
  },
)

eachTransport(
  'keepalive timeout: an unanswered ping closes the session with a typed error',
  async (tt, maker) => {
    const clock = new ManualClock()
    const pair = await maker.make()
    const { a, b } = pair
    tt.teardown(() => pair.close())
    const client = new Session(a, { role: 'client', config: kaConfig, clock })
    const seen: FrameHeader[] = []
    const decoder = new Decoder(
      {
        onFrame: (h) => seen.push(h),
        onDataStart: () => {},
        onDataChunk: () => {},
        onDataEnd: () => {},
        onError: () => {},
      },
      1 << 30,
    )
    // The peer reads but never answers: a dead or wedged agent.
    b.on('data', (c: Buffer) => decoder.push(c))
    const errored = once(client, 'error')
    clock.advance(1000)
    await until(() => seen.some((h) => h.type === FrameType.Ping))
    tt.ok(
      seen.some((h) => h.type === FrameType.Ping),
      'ping sent',
    )
    tt.notOk(client.closed, 'not closed before the timeout')
    clock.advance(499)
    tt.notOk(client.closed, 'not closed at 499 ms')
    clock.advance(1)
    const [err] = (await errored) as [HopgateError]
    tt.equal(err.code, 'HOPGATE_ERR_YAMUX_KEEPALIVE_TIMEOUT')
    tt.ok(client.closed, 'session closed')
    await until(() => seen.some((h) => h.type === FrameType.GoAway))
    const goAway = seen.find((h) => h.type === FrameType.GoAway)
    tt.equal(goAway?.length, 2, 'GoAway(internal error) told the peer why')
    tt.equal(client.stats().timers, 0, 'no session timers left')
    // The transport gets a bounded time to flush and close; one whose peer never closes its side
    // (the in-memory pair) is destroyed when that time is up.
    clock.advance(testConfig.connectionWriteTimeoutMs!)
    await until(() => a.destroyed)
    tt.ok(a.destroyed, 'transport gone')
    tt.equal(clock.pending, 0, 'no timers left at all')
  },
)

t.test('keepalive jitter spreads pings within the configured fraction', async (tt) => {
  const clock = new ManualClock()
  const [a, b] = duplexPair()
  const client = new Session(a, {
    role: 'client',
    config: { ...kaConfig, keepAliveJitter: 0.2 },
    clock,
  })
  const server = new Session(b, { role: 'server', config: testConfig, clock })
  tt.teardown(() => (client.close(), server.close()))
  clock.advance(799)
  tt.equal(client.stats().pendingPings, 0, 'no ping before 0.8 x interval')
  clock.advance(401)
  tt.equal(client.stats().pendingPings, 1, 'a ping by 1.2 x interval')
})

t.test(
  'connection write timeout: a transport that accepts nothing closes the session',
  async (tt) => {
    const clock = new ManualClock()
    const [a, b] = duplexPair(16 * 1024)
    const client = new Session(a, {
      role: 'client',
      config: { ...testConfig, connectionWriteTimeoutMs: 2000, sendBufferBytes: 0 },
      clock,
    })
    b.pause() // the peer never reads
    const errored = once(client, 'error')
    const s = client.openStream()
    s.on('error', () => {})
    s.write(Buffer.alloc(200 * 1024))
    await turns(20)
    tt.ok(client.congested, 'transport congested')
    clock.advance(1999)
    tt.notOk(client.closed, 'still waiting at 1999 ms')
    clock.advance(1)
    const [err] = (await errored) as [HopgateError]
    tt.equal(err.code, 'HOPGATE_ERR_YAMUX_CONNECTION_WRITE_TIMEOUT')
    tt.ok(s.destroyed, 'streams torn down')
    tt.ok(a.destroyed, 'transport destroyed rather than flushed')
  },
)
