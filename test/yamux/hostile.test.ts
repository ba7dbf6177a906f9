// Hostile and malformed input: each case ends in a GoAway with the right code and a typed
// 'error' event; the process never crashes and a neighbouring session is untouched.
import t from 'tap'
import { once } from 'node:events'
import type { Duplex } from 'node:stream'
import fc from 'fast-check'
import { connPairs } from '../helpers/conn-pairs.js'
import { sessionPair, testConfig } from '../helpers/yamux-pair.js'
import {
  Decoder,
  encodeFrame,
  Flag,
  FrameType,
  GoAwayCode,
  Session,
  type FrameHeader,
  type YamuxConfig,
} from '../../shared/yamux/index.js'
import type { HopgateError } from '../../shared/errors.js'

interface RawPeer {
  raw: Duplex
  session: Session
  frames: FrameHeader[]
  send(
    h: { type: number; flags: number; streamId: number; length?: number },
    payload?: Buffer,
  ): void
  goAway(): Promise<number>
  error: Promise<HopgateError>
  close(): Promise<void>
}

/** Our session as the server, and a raw socket as a client that writes whatever it likes. */
async function rawPeer(config: Partial<YamuxConfig> = {}, transport = 'tcp'): Promise<RawPeer> {
  const pair = await connPairs.find((m) => m.name === transport)!.make()
  const session = new Session(pair.b, { role: 'server', config: { ...testConfig, ...config } })
  const frames: FrameHeader[] = []
  const decoder = new Decoder(
    {
      onFrame: (h) => frames.push(h),
      onDataStart: (h) => frames.push(h),
      onDataChunk: () => {},
      onDataEnd: () => {},
      onError: () => {},
    },
    2 ** 31 - 1,
  )
  pair.a.on('data', (c: Buffer) => decoder.push(c))
  pair.a.on('error', () => {})
  const error = once(session, 'error').then(([e]) => e as HopgateError)
  return {
    raw: pair.a,
    session,
    frames,
    error,
    send: (h, payload) => pair.a.write(encodeFrame({ length: 0, ...h }, payload)),
    goAway: async () => {
      for (let i = 0; i < 200; i++) {
        const g = frames.find((f) => f.type === FrameType.GoAway)
        if (g) return g.length
        await new Promise((r) => setTimeout(r, 5))
      }
      throw new Error('no GoAway received')
    },
    close: async () => {
      session.close()
      await pair.close()
    },
  }
}

const SYN = (id: number, extra = 0) => ({
  type: FrameType.WindowUpdate,
  flags: Flag.SYN | extra,
  streamId: id,
})

const cases: Array<{
  name: string
  code: string
  config?: Partial<YamuxConfig>
  script: (p: RawPeer) => void
}> = [
  {
    name: 'wrong version',
    code: 'HOPGATE_ERR_YAMUX_BAD_VERSION',
    script: (p) => p.raw.write(Buffer.from('010000010000000100000000', 'hex')),
  },
  {
    name: 'unknown type',
    code: 'HOPGATE_ERR_YAMUX_BAD_TYPE',
    script: (p) => p.raw.write(Buffer.from('000700000000000100000000', 'hex')),
  },
  {
    name: 'data beyond the window',
    code: 'HOPGATE_ERR_YAMUX_RECV_WINDOW_EXCEEDED',
    script: (p) => {
      p.send(SYN(1))
      p.send({ type: FrameType.Data, flags: 0, streamId: 1 }, Buffer.alloc(256 * 1024 + 1))
    },
  },
  {
    name: 'window overflow past 2^31-1',
    code: 'HOPGATE_ERR_YAMUX_WINDOW_OVERFLOW',
    script: (p) => {
      p.send(SYN(1))
      p.send({ type: FrameType.WindowUpdate, flags: 0, streamId: 1, length: 2 ** 31 - 1 })
    },
  },
  {
    name: 'wrong id parity (client opens an even id)',
    code: 'HOPGATE_ERR_YAMUX_BAD_STREAM_ID',
    script: (p) => p.send(SYN(2)),
  },
  {
    name: 'SYN on a live id',
    code: 'HOPGATE_ERR_YAMUX_DUPLICATE_STREAM',
    script: (p) => {
      p.send(SYN(1))
      p.send(SYN(1))
    },
  },
  {
    name: 'SYN reusing an old id',
    code: 'HOPGATE_ERR_YAMUX_BAD_STREAM_ID',
    script: (p) => {
      p.send(SYN(5))
      p.send(SYN(3))
    },
  },
  {
    name: 'frames after RST',
    code: 'HOPGATE_ERR_YAMUX_UNEXPECTED_FRAME',
    script: (p) => {
      p.send(SYN(1))
      p.send({ type: FrameType.WindowUpdate, flags: Flag.RST, streamId: 1 })
      p.send({ type: FrameType.Data, flags: 0, streamId: 1 }, Buffer.from('late'))
    },
  },
  {
    name: 'data after FIN',
    code: 'HOPGATE_ERR_YAMUX_UNEXPECTED_FRAME',
    script: (p) => {
      p.send(SYN(1, Flag.FIN))
      p.send({ type: FrameType.Data, flags: 0, streamId: 1 }, Buffer.from('late'))
    },
  },
  {
    name: 'data on a stream never opened',
    code: 'HOPGATE_ERR_YAMUX_BAD_STREAM_ID',
    script: (p) => p.send({ type: FrameType.Data, flags: 0, streamId: 9 }, Buffer.from('x')),
  },
  {
    name: 'data frame longer than any window',
    code: 'HOPGATE_ERR_YAMUX_FRAME_TOO_LARGE',
    script: (p) => p.raw.write(Buffer.from('000000000000000101000001', 'hex')),
  },
  {
    name: 'open flood past the accept backlog',
    code: 'HOPGATE_ERR_YAMUX_OPEN_FLOOD',
    config: { acceptBacklog: 4 },
    script: (p) => {
      for (let id = 1; id <= 2 * 20; id += 2) p.send(SYN(id))
    },
  },
]

for (const c of cases) {
  for (const transport of ['memory', 'tcp', 'tls']) {
    t.test(`hostile: ${c.name} [${transport}]`, async (tt) => {
      const neighbour = await sessionPair(connPairs[1]!)
      const p = await rawPeer(c.config, transport)
      tt.teardown(async () => {
        await p.close()
        await neighbour.close()
      })
      c.script(p)
      const err = await p.error
      tt.equal(err.code, c.code, 'typed error event')
      tt.equal(await p.goAway(), GoAwayCode.ProtocolError, 'GoAway(protocol error) on the wire')
      tt.ok(p.session.closed, 'offending session closed')
      tt.equal(p.session.stats().timers, 0, 'no timers left')
      tt.ok((await neighbour.client.ping()) >= 0, 'a neighbouring session still works')
    })
  }
}

t.test('open flood: opens past the backlog are refused with RST first', async (tt) => {
  const p = await rawPeer({ acceptBacklog: 4 })
  tt.teardown(() => p.close())
  for (let id = 1; id <= 11; id += 2) p.send(SYN(id))
  await new Promise((r) => setTimeout(r, 50))
  const rsts = p.frames.filter((f) => f.flags & Flag.RST).map((f) => f.streamId)
  tt.same(rsts, [9, 11], 'the 5th and 6th opens were reset')
  tt.notOk(p.session.closed, 'a few refusals are not yet a flood')
  tt.equal(p.session.stats().acceptQueue, 4, 'four wait to be accepted')
})

t.test('ping flood from a peer that never reads our replies stays bounded', async (tt) => {
  const p = await rawPeer({ maxPendingControlBytes: 64 * 1024 }, 'memory')
  tt.teardown(() => p.close())
  p.raw.pause()
  p.raw.removeAllListeners('data')
  const ping = encodeFrame({ type: FrameType.Ping, flags: Flag.SYN, streamId: 0, length: 1 })
  const burst = Buffer.concat(Array.from({ length: 50_000 }, () => ping))
  p.raw.write(burst)
  await new Promise((r) => setTimeout(r, 200))
  const pending = (p.session as unknown as { transport: Duplex }).transport.writableLength
  tt.ok(
    pending <= 64 * 1024 + 12,
    `replies waiting: ${pending} bytes, bounded by maxPendingControlBytes`,
  )
  tt.notOk(p.session.closed, 'session alive')
})

t.test('property: random frame sequences never crash a session', async (tt) => {
  const frameArb = fc.record({
    type: fc.integer({ min: 0, max: 4 }),
    flags: fc.integer({ min: 0, max: 16 }),
    streamId: fc.integer({ min: 0, max: 12 }),
    length: fc.integer({ min: 0, max: 300_000 }),
  })
  await fc.assert(
    fc.asyncProperty(fc.array(frameArb, { maxLength: 12 }), async (frames) => {
      const p = await rawPeer({}, 'memory')
      p.session.on('stream', (s) => {
        s.on('error', () => {})
        s.resume()
      })
      let errorCode: string | undefined
      p.error.then((e) => (errorCode = e.code)).catch(() => {})
      for (const f of frames) {
        const payload =
          f.type === FrameType.Data ? Buffer.alloc(Math.min(f.length, 1024)) : undefined
        p.raw.write(encodeFrame(f, payload))
      }
      await new Promise((r) => setImmediate(r))
      await new Promise((r) => setTimeout(r, 1))
      const fine = !p.session.closed || errorCode !== undefined
      await p.close()
      return fine
    }),
    { numRuns: 150 },
  )
  tt.pass('150 random sequences: the session either stays up or closes with a typed error')
})
