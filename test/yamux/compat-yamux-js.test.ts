// Wire compatibility of our yamux Session with yamux-js 0.2.0, limited to what yamux-js gets right,
// plus tests that pin down its known limits as assertions about *its* behaviour. Every subtest name
// says which: "yamux-js ok: ..." must pass with a correct Session; "yamux-js limit: ..." documents
// a yamux-js defect (if one of those fails, yamux-js changed, not us). See bench/peers/yamux-js.ts
// for the full list of its defects.
//
// The "ok" tests use yamux-js exactly as shipped (no re-framer). That is only sound because each
// frame we send it is small (<= 1 KiB) and sent in lockstep (we wait for each echo), so no frame is
// ever split across two of its reads. Limits documented here but not tested, because they could
// only be shown with timing: it polls every 100 ms when its send window is full; data carried on a
// SYN Data frame is dropped (ours sends SYN as a WindowUpdate, so it never hits this).
import t from 'tap'
import { once } from 'node:events'
import { Duplex } from 'node:stream'
import { Session, type YamuxConfig, type YamuxStream } from '../../shared/yamux/index.js'
import { connPairs, type ConnPair, type ConnPairMaker } from '../helpers/conn-pairs.js'
import { duplexPair } from '../helpers/duplex-pair.js'
import {
  yamuxJsPeer,
  type YamuxJsPeer,
  type YamuxJsPeerOptions,
} from '../../bench/peers/yamux-js.js'
import { readAll, readExactly, sendBytes } from '../../bench/peers/testkit.js'
import { testConfig, type TapTest } from '../helpers/yamux-pair.js'

const TIMEOUT_MS = 30_000
/** Deadlines stretched past testConfig's: 64 MiB each way must not trip them on a loaded box. */
const OUR_CONFIG: Partial<YamuxConfig> = {
  ...testConfig,
  pingTimeoutMs: 5000,
  streamOpenTimeoutMs: 10_000,
  streamCloseTimeoutMs: 10_000,
  connectionWriteTimeoutMs: 10_000,
}

interface Fixture {
  ours: Session
  theirs: YamuxJsPeer
  /** Streams yamux-js accepted (server role only), in order. */
  theirStreams: Duplex[]
}

async function setup(
  tt: TapTest,
  pair: ConnPair,
  opts: {
    ourRole?: 'client' | 'server'
    config?: Partial<YamuxConfig>
    theirs?: YamuxJsPeerOptions
    onTheirStream?: (s: Duplex) => void
  } = {},
): Promise<Fixture> {
  const ourRole = opts.ourRole ?? 'client'
  // our timers are unref'd: over an in-memory pair nothing else would keep a waiting test alive
  const keepAlive = setInterval(() => {}, 1000)
  const ours = new Session(ourRole === 'client' ? pair.a : pair.b, {
    role: ourRole,
    config: { ...OUR_CONFIG, ...opts.config },
  })
  ours.on('error', () => {})
  const theirs = yamuxJsPeer(
    ourRole === 'client' ? pair.b : pair.a,
    ourRole === 'client' ? 'server' : 'client',
    {
      ...opts.theirs,
      config: { enableKeepAlive: false, ...opts.theirs?.config },
    },
  )
  const theirStreams: Duplex[] = []
  if (ourRole === 'client') {
    theirs.onStream((s) => {
      s.on('error', () => {})
      theirStreams.push(s)
      opts.onTheirStream?.(s)
    })
  }
  tt.teardown(async () => {
    clearInterval(keepAlive)
    ours.close()
    await theirs.close()
    await pair.close()
  })
  return { ours, theirs, theirStreams }
}

/** yamux-js echo: every chunk written straight back (it never ends on our FIN, so neither do we). */
function echo(s: Duplex): void {
  s.on('data', (d: Buffer) => s.write(d))
}

/** A ping round trip: yamux-js handles frames in order, so afterwards it has processed all before. */
async function barrier(ours: Session): Promise<void> {
  await ours.ping()
  await new Promise((resolve) => setImmediate(resolve))
}

for (const maker of connPairs) {
  const label = `[${maker.name}]`

  void t.test(
    `${label} yamux-js ok: ours client opens, small messages echoed`,
    { timeout: TIMEOUT_MS },
    async (tt) => {
      const f = await setup(tt, await maker.make(), { onTheirStream: echo })
      const s = f.ours.openStream()
      for (const size of [1, 10, 100, 512, 1024, 7, 1000]) {
        const msg = Buffer.alloc(size, size % 251)
        s.write(msg)
        tt.same(
          await readExactly(s, size),
          msg,
          `ours got its ${size}-byte message echoed by yamux-js`,
        )
      }
      tt.ok(s.established, 'ours stream acknowledged (yamux-js ACKs on its first data frame)')
      tt.equal(f.theirStreams.length, 1, 'yamux-js accepted exactly one stream')
      tt.same(f.theirs.errors, [], 'yamux-js reported no errors')
    },
  )

  void t.test(
    `${label} yamux-js ok: several streams interleaved`,
    { timeout: TIMEOUT_MS },
    async (tt) => {
      const f = await setup(tt, await maker.make(), { onTheirStream: echo })
      const streams = Array.from({ length: 8 }, () => f.ours.openStream())
      for (let round = 0; round < 5; round++) {
        for (const [i, s] of streams.entries()) {
          const msg = `stream ${s.id} round ${round} `.repeat(i + 1)
          s.write(msg)
          tt.equal(
            String(await readExactly(s, msg.length)),
            msg,
            `stream ${s.id} round ${round} echoed`,
          )
        }
      }
      tt.same(
        streams.map((s) => s.id),
        [1, 3, 5, 7, 9, 11, 13, 15],
        'ours client ids are odd from 1',
      )
      tt.same(f.theirs.errors, [], 'yamux-js reported no errors')
    },
  )

  void t.test(`${label} yamux-js ok: ping both ways`, { timeout: TIMEOUT_MS }, async (tt) => {
    const f = await setup(tt, await maker.make(), { onTheirStream: echo })
    const rtt = await f.ours.ping()
    tt.type(rtt, 'number', 'ours ping() answered by yamux-js')
    tt.type(await f.theirs.ping(), 'number', 'yamux-js ping answered by ours (matching id)')
    tt.same(f.theirs.errors, [], 'yamux-js reported no errors')
  })

  void t.test(
    `${label} yamux-js ok: its FIN (close()) ends ours stream`,
    { timeout: TIMEOUT_MS },
    async (tt) => {
      const f = await setup(tt, await maker.make(), {
        onTheirStream: (s) => s.once('data', (d: Buffer) => s.end(d)), // end() -> its close() -> FIN
      })
      const s = f.ours.openStream()
      s.write('last words')
      tt.equal(
        String(await readAll(s)),
        'last words',
        'ours reads the data then end on yamux-js FIN',
      )
      tt.ok(s.writable, 'ours write side still open (half-close)')
    },
  )

  void t.test(
    `${label} yamux-js ok: ours RST marks its stream reset`,
    { timeout: TIMEOUT_MS },
    async (tt) => {
      const f = await setup(tt, await maker.make(), { onTheirStream: echo })
      const s = f.ours.openStream()
      s.write('x')
      await readExactly(s, 1)
      s.destroy()
      await barrier(f.ours)
      const theirs = f.theirStreams[0]!
      const err = once(theirs, 'error') as Promise<[Error]>
      theirs.write('after reset') // yamux-js reports the reset only when written to
      tt.equal(
        (await err)[0].message,
        'connection reset',
        'yamux-js write after ours RST errors "connection reset"',
      )
    },
  )

  void t.test(
    `${label} yamux-js ok: yamux-js client opens to ours server`,
    { timeout: TIMEOUT_MS },
    async (tt) => {
      const f = await setup(tt, await maker.make(), { ourRole: 'server' })
      const accepted = once(f.ours, 'stream') as Promise<[YamuxStream]>
      const s = await f.theirs.openStream()
      s.on('error', () => {})
      s.write('from yamux-js')
      const [ourStream] = await accepted
      tt.equal(ourStream.id % 2, 1, 'yamux-js client uses odd ids')
      tt.equal(
        String(await readExactly(ourStream, 13)),
        'from yamux-js',
        'ours reads yamux-js data',
      )
      ourStream.write('reply')
      tt.equal(String(await readExactly(s, 5)), 'reply', 'yamux-js reads ours reply')
      tt.type(await f.theirs.ping(), 'number', 'yamux-js client ping answered by ours server')
      tt.same(f.theirs.errors, [], 'yamux-js reported no errors')
    },
  )

  void t.test(
    `${label} yamux-js ok: its close() sends GoAway(normal), ours closes`,
    { timeout: TIMEOUT_MS },
    async (tt) => {
      const f = await setup(tt, await maker.make(), { onTheirStream: echo })
      await f.ours.ping()
      const goaway = once(f.ours, 'goaway') as Promise<[number]>
      const closed = once(f.ours, 'close') as Promise<[Error | undefined]>
      void f.theirs.close()
      tt.equal((await goaway)[0], 0, "ours 'goaway' fires with code 0")
      tt.throws(
        () => f.ours.openStream(),
        { code: /^HOPGATE_ERR_YAMUX/ },
        'ours opens fail with a typed yamux error',
      )
      const [err] = await closed
      tt.equal(err, undefined, 'ours session closes cleanly (GoAway then EOF, no streams)')
    },
  )
}

// ---- yamux-js limits: assertions about its behaviour, not ours ----

const tcp = connPairs.find((m) => m.name === 'tcp') as ConnPairMaker

void t.test(
  'yamux-js limit: does not end its stream on ours FIN',
  { timeout: TIMEOUT_MS },
  async (tt) => {
    let theirEnded = false
    const f = await setup(tt, await tcp.make(), {
      onTheirStream: (s) => {
        s.on('end', () => (theirEnded = true))
        echo(s)
      },
    })
    const s = f.ours.openStream()
    s.end('x') // data, then WindowUpdate|FIN
    tt.equal(String(await readExactly(s, 1)), 'x', 'yamux-js got the data before the FIN')
    await barrier(f.ours)
    tt.notOk(
      theirEnded,
      'yamux-js stream saw no end after ours FIN (it tests flags === SYN where it means FIN)',
    )
    tt.notOk(f.theirStreams[0]?.readableEnded, 'its readable is still open')
  },
)

void t.test(
  'yamux-js limit: a stream it closes before writing gets FIN but never ACK; ours takes the FIN as acceptance',
  { timeout: TIMEOUT_MS },
  async (tt) => {
    const f = await setup(tt, await tcp.make(), { onTheirStream: (s) => s.end() })
    const s = f.ours.openStream()
    tt.equal((await readAll(s)).length, 0, 'ours sees the yamux-js FIN')
    tt.ok(s.established, 'no ACK came, but ours counts the FIN as acceptance (no open timeout)')
    tt.equal(f.ours.stats().unacknowledgedOpens, 0, 'the backlog slot is free at once')
    s.end()
    if (!s.closed) await once(s, 'close')
    tt.equal(f.ours.streamCount, 0, 'closing our side too releases it cleanly')
    tt.equal(f.ours.stats().unacknowledgedOpens, 0, 'and frees its backlog slot')
  },
)

void t.test(
  'yamux-js limit: resets the 257th inbound stream (streams leak, backlog 256)',
  { timeout: 60_000 },
  async (tt) => {
    const f = await setup(tt, await tcp.make(), {
      onTheirStream: (s) => s.once('data', (d: Buffer) => s.end(d)), // echo once, then FIN
    })
    let ok = 0
    for (let i = 0; i < 256; i++) {
      const s = f.ours.openStream()
      s.end('x')
      if (String(await readAll(s)) === 'x') ok++
    }
    tt.equal(ok, 256, 'first 256 streams: echoed and closed cleanly both ways (as ours sees it)')
    tt.equal(f.ours.streamCount, 0, 'ours released all 256')
    const s = f.ours.openStream()
    s.write('x')
    const [err] = (await once(s, 'error').catch((e: unknown) => [e])) as [Error & { code?: string }]
    tt.equal(
      err.code,
      'HOPGATE_ERR_YAMUX_STREAM_REFUSED',
      '257th stream: yamux-js answered the SYN with RST',
    )
    tt.ok(
      f.theirs.logs.some((l) => l.includes('backlog exceeded')),
      'yamux-js logged "backlog exceeded": its table still holds the 256 closed streams',
    )
  },
)

void t.test(
  'yamux-js limit: a Client never surfaces streams the peer opens',
  { timeout: TIMEOUT_MS },
  async (tt) => {
    const f = await setup(tt, await tcp.make(), { ourRole: 'server' })
    tt.throws(
      () => f.theirs.onStream(() => {}),
      /cannot accept/,
      'adapter: yamux-js Client has no stream callback',
    )
    const s = f.ours.openStream()
    s.write('hello?')
    await barrier(f.ours)
    tt.ok(s.established, 'yamux-js Client ACKs the stream (with the window update for our data)')
    const table = (f.theirs.session as unknown as { streams: Map<number, unknown> }).streams
    tt.ok(
      table.has(s.id),
      'yamux-js keeps it in its stream table, where no application can reach it',
    )
  },
)

void t.test(
  'yamux-js limit (with re-framer): no receive backpressure, a paused reader buffers all',
  { timeout: TIMEOUT_MS },
  async (tt) => {
    const total = 4 * 1024 * 1024
    const f = await setup(tt, await tcp.make(), {
      theirs: { reframe: true },
      onTheirStream: (s) => s.pause(), // never reads
    })
    const s = f.ours.openStream()
    await sendBytes(s, total, { keepOpen: true })
    await barrier(f.ours)
    tt.equal(
      f.theirStreams[0]?.readableLength,
      total,
      'yamux-js granted window for all 4 MiB into an unread stream',
    )
  },
)

/**
 * A transport whose read side delivers every chunk longer than 100 bytes as two halves (headers,
 * written separately by ours, stay whole), exactly as a socket read can split a frame.
 */
class SplitReads extends Duplex {
  readonly #inner: Duplex
  constructor(inner: Duplex) {
    super({ allowHalfOpen: true })
    this.#inner = inner
    inner.on('data', (c: Buffer) => {
      if (c.length > 100) {
        const h = c.length >> 1
        this.push(c.subarray(0, h))
        this.push(c.subarray(h))
      } else {
        this.push(c)
      }
    })
    inner.on('end', () => this.push(null))
    inner.on('close', () => this.destroy())
  }
  override _read(): void {}
  override _write(c: Buffer, _e: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.#inner.write(c, cb)
  }
  override _final(cb: (err?: Error | null) => void): void {
    this.#inner.end()
    cb()
  }
  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.#inner.destroy()
    cb(err)
  }
}

function splitReadsPair(): ConnPair {
  const [a, b] = duplexPair()
  const theirs = new SplitReads(b)
  return {
    a,
    b: theirs,
    close: async () => {
      a.destroy()
      theirs.destroy()
    },
  }
}

void t.test(
  'yamux-js limit: a Data frame split across two reads is lost (as shipped)',
  { timeout: TIMEOUT_MS },
  async (tt) => {
    let received = 0
    const f = await setup(tt, splitReadsPair(), {
      config: { pingTimeoutMs: 500 },
      theirs: { reframe: false },
      onTheirStream: (s) => s.on('data', (d: Buffer) => (received += d.length)),
    })
    const s = f.ours.openStream()
    s.write(Buffer.alloc(400, 1))
    await tt.rejects(
      f.ours.ping(),
      { code: 'HOPGATE_ERR_YAMUX_PING_TIMEOUT' },
      'yamux-js swallowed the split frame and reads our next frames as its missing body',
    )
    tt.equal(received, 0, 'none of the 400 bytes reached the yamux-js stream')
  },
)

void t.test(
  'yamux-js ok (with re-framer): the same split reads work',
  { timeout: TIMEOUT_MS },
  async (tt) => {
    const f = await setup(tt, splitReadsPair(), { theirs: { reframe: true }, onTheirStream: echo })
    const s = f.ours.openStream()
    const msg = Buffer.alloc(400, 2)
    s.write(msg)
    tt.same(await readExactly(s, 400), msg, 'echoed intact through the re-framer')
    tt.type(await f.ours.ping(), 'number', 'session still in sync')
  },
)
