// Wire compatibility of our yamux Session with @chainsafe/libp2p-yamux 8 as the peer, in both roles
// (ours client / theirs server and the reverse), over an in-memory pair, loopback TCP and mutual
// TLS. The peer runs through bench/peers/libp2p.ts (a Node Duplex per stream). Subtest names say
// which side acts; assertion messages say which side observed what, so a failure points at one
// implementation.
//
// libp2p-yamux behaviour the assertions allow for (see bench/peers/libp2p.ts):
//  - On receiving GoAway(normal) it closes all its streams and the muxer at once; it does not keep
//    existing streams running. So "existing streams keep working" is checked for their GoAway
//    only; for ours we check that their new opens fail and that our own streams are untouched.
//  - Its stream-level errors are libp2p errors: a reset is `name === 'StreamResetError'`.
//  - It abandons an in-flight ping when it stops on GoAway, then treats the late pong as a protocol
//    error and aborts the connection; setup() waits out its initial keepalive ping for that reason.
import t from 'tap'
import { once } from 'node:events'
import type { Duplex } from 'node:stream'
import { Session, type YamuxConfig, type YamuxStream } from '../../shared/yamux/index.js'
import { connPairs, type ConnPairMaker } from '../helpers/conn-pairs.js'
import { libp2pPeer, type Libp2pPeer } from '../../bench/peers/libp2p.js'
import type { PeerRole } from '../../bench/peers/types.js'
import { nextError, readAll, readExactly, recvBytes, sendBytes } from '../../bench/peers/testkit.js'
import { testConfig, type TapTest } from '../helpers/yamux-pair.js'

const MiB = 1024 * 1024
const STEP_TIMEOUT_MS = 30_000
const BULK_TIMEOUT_MS = 120_000

/** Deadlines stretched past testConfig's: 64 MiB each way must not trip them on a loaded box. */
const OUR_CONFIG: Partial<YamuxConfig> = {
  ...testConfig,
  pingTimeoutMs: 5000,
  streamOpenTimeoutMs: 10_000,
  streamCloseTimeoutMs: 10_000,
  connectionWriteTimeoutMs: 10_000,
}

/** A FIFO whose next() waits for the next push. */
class Inbox<T> {
  readonly #items: T[] = []
  readonly #waiters: Array<(v: T) => void> = []
  push(v: T): void {
    const w = this.#waiters.shift()
    if (w) w(v)
    else this.#items.push(v)
  }
  next(): Promise<T> {
    if (this.#items.length > 0) return Promise.resolve(this.#items.shift() as T)
    return new Promise((resolve) => this.#waiters.push(resolve))
  }
}

interface Fixture {
  ours: Session
  theirs: Libp2pPeer
  /** Next stream the peer opened to us. */
  ourInbound(): Promise<YamuxStream>
  /** Next stream we opened, as the peer sees it. */
  theirInbound(): Promise<Duplex>
  /** Errors each stream emitted, so an expected reset never becomes an uncaught 'error'. */
  errors: Map<Duplex, Error>
}

async function setup(tt: TapTest, maker: ConnPairMaker, ourRole: PeerRole): Promise<Fixture> {
  const pair = await maker.make()
  // our timers are unref'd: over an in-memory pair nothing else need keep a waiting test alive
  const keepAlive = setInterval(() => {}, 1000)
  const ourTransport = ourRole === 'client' ? pair.a : pair.b
  const theirTransport = ourRole === 'client' ? pair.b : pair.a
  const ours = new Session(ourTransport, { role: ourRole, config: OUR_CONFIG })
  const theirs = libp2pPeer(theirTransport, ourRole === 'client' ? 'server' : 'client')
  const errors = new Map<Duplex, Error>()
  const track = <S extends Duplex>(s: S): S => {
    s.on('error', (err: Error) => errors.set(s, err))
    return s
  }
  const ourInbox = new Inbox<YamuxStream>()
  const theirInbox = new Inbox<Duplex>()
  ours.on('stream', (s) => ourInbox.push(track(s)))
  ours.on('error', () => {}) // recorded on ours.closeError; asserted where it matters
  theirs.onStream((s) => theirInbox.push(track(s)))
  tt.teardown(async () => {
    clearInterval(keepAlive)
    ours.close()
    await theirs.close()
    await pair.close()
  })
  // libp2p pings at start (keepalive). If a GoAway reaches it while that ping is in flight it
  // abandons the ping and then takes our (correct) pong as UnRequestedPingError and aborts the
  // connection. Joining that ping here keeps the GoAway tests about GoAway.
  await theirs.ping()
  return {
    ours,
    theirs,
    ourInbound: () => ourInbox.next(),
    theirInbound: () => theirInbox.next(),
    errors,
  }
}

/** Our stream, established: written to, seen by the peer, answered (so the ACK has arrived). */
async function establishedFromOurs(
  f: Fixture,
): Promise<{ ourStream: YamuxStream; theirStream: Duplex }> {
  const ourStream = f.ours.openStream()
  ourStream.on('error', (err: Error) => f.errors.set(ourStream, err))
  ourStream.write('?')
  const theirStream = await f.theirInbound()
  await readExactly(theirStream, 1)
  theirStream.write('!')
  await readExactly(ourStream, 1)
  return { ourStream, theirStream }
}

async function establishedFromTheirs(
  f: Fixture,
): Promise<{ ourStream: YamuxStream; theirStream: Duplex }> {
  const theirStream = await f.theirs.openStream()
  theirStream.on('error', (err: Error) => f.errors.set(theirStream, err))
  theirStream.write('?')
  const ourStream = await f.ourInbound()
  await readExactly(ourStream, 1)
  ourStream.write('!')
  await readExactly(theirStream, 1)
  return { ourStream, theirStream }
}

const transports = connPairs

for (const maker of transports) {
  for (const ourRole of ['client', 'server'] as const) {
    const theirRole = ourRole === 'client' ? 'server' : 'client'
    const label = `[${maker.name}] ours ${ourRole} / libp2p ${theirRole}`

    void t.test(`${label}: streams open both ways`, { timeout: STEP_TIMEOUT_MS }, async (tt) => {
      const f = await setup(tt, maker, ourRole)

      const ourStream = f.ours.openStream()
      tt.equal(
        ourStream.id % 2,
        ourRole === 'client' ? 1 : 0,
        'ours picks the id parity of its role',
      )
      ourStream.write('hello from ours')
      const theirStream = await f.theirInbound()
      tt.equal(
        String(await readExactly(theirStream, 15)),
        'hello from ours',
        'theirs reads ours data',
      )
      theirStream.write('hello back')
      tt.equal(String(await readExactly(ourStream, 10)), 'hello back', 'ours reads theirs reply')
      ourStream.end()
      theirStream.end()
      tt.equal((await readAll(ourStream)).length, 0, 'ours sees theirs FIN')
      tt.equal((await readAll(theirStream)).length, 0, 'theirs sees ours FIN')

      const theirOpened = await f.theirs.openStream()
      theirOpened.write('hello from theirs')
      const ourAccepted = await f.ourInbound()
      tt.equal(
        ourAccepted.id % 2,
        ourRole === 'client' ? 0 : 1,
        'theirs stream id has the peer parity',
      )
      tt.equal(
        String(await readExactly(ourAccepted, 17)),
        'hello from theirs',
        'ours reads theirs data',
      )
      ourAccepted.end('bye')
      tt.equal(String(await readAll(theirOpened)), 'bye', 'theirs reads ours reply and FIN')
      theirOpened.end()
      tt.equal((await readAll(ourAccepted)).length, 0, 'ours sees theirs FIN')
      tt.equal(f.errors.size, 0, 'no stream errored')
    })

    void t.test(
      `${label}: 64 MiB each way at once on one stream, SHA-256 checked`,
      { timeout: BULK_TIMEOUT_MS },
      async (tt) => {
        const f = await setup(tt, maker, ourRole)
        const { ourStream, theirStream } = await establishedFromOurs(f)
        const [up, down, atTheirs, atOurs] = await Promise.all([
          sendBytes(ourStream, 64 * MiB),
          sendBytes(theirStream, 64 * MiB),
          recvBytes(theirStream),
          recvBytes(ourStream),
        ])
        tt.equal(atTheirs.bytes, 64 * MiB, 'theirs received 64 MiB')
        tt.equal(atTheirs.sha256, up, 'ours -> theirs SHA-256 matches')
        tt.equal(atOurs.bytes, 64 * MiB, 'ours received 64 MiB')
        tt.equal(atOurs.sha256, down, 'theirs -> ours SHA-256 matches')
      },
    )

    void t.test(
      `${label}: 8 MiB into a reader that stalls first (flow control holds, nothing aborted)`,
      { timeout: BULK_TIMEOUT_MS },
      async (tt) => {
        const f = await setup(tt, maker, ourRole)
        const a = await establishedFromOurs(f)
        const b = await establishedFromTheirs(f)
        const [toTheirs, atTheirs, toOurs, atOurs] = await Promise.all([
          sendBytes(a.ourStream, 8 * MiB),
          recvBytes(a.theirStream, { pauseFirstMs: 500 }),
          sendBytes(b.theirStream, 8 * MiB),
          recvBytes(b.ourStream, { pauseFirstMs: 500 }),
        ])
        tt.equal(atTheirs.sha256, toTheirs, 'ours -> stalled theirs: all bytes, in order')
        tt.equal(atOurs.sha256, toOurs, 'theirs -> stalled ours: all bytes, in order')
      },
    )

    void t.test(`${label}: half-close both ways`, { timeout: STEP_TIMEOUT_MS }, async (tt) => {
      const f = await setup(tt, maker, ourRole)

      // ours ends first; theirs keeps sending, ours keeps receiving
      const a = await establishedFromOurs(f)
      a.ourStream.end('request')
      tt.equal(String(await readAll(a.theirStream)), 'request', 'theirs reads to ours FIN')
      a.theirStream.write('response 1;')
      tt.equal(
        String(await readExactly(a.ourStream, 11)),
        'response 1;',
        'ours still receives after its FIN',
      )
      const rest = readAll(a.ourStream)
      a.theirStream.end('response 2')
      tt.equal(String(await rest), 'response 2', 'ours reads to theirs FIN')

      // theirs ends first; ours keeps sending, theirs keeps receiving
      const b = await establishedFromTheirs(f)
      b.theirStream.end('request')
      tt.equal(String(await readAll(b.ourStream)), 'request', 'ours reads to theirs FIN')
      b.ourStream.write('response 1;')
      tt.equal(
        String(await readExactly(b.theirStream, 11)),
        'response 1;',
        'theirs still receives after its FIN',
      )
      const rest2 = readAll(b.theirStream)
      b.ourStream.end('response 2')
      tt.equal(String(await rest2), 'response 2', 'theirs reads to ours FIN')
      if (!b.ourStream.closed) await once(b.ourStream, 'close')
      tt.equal(f.ours.streamCount, 0, 'ours released both streams after FIN both ways')
      tt.equal(f.errors.size, 0, 'no stream errored')
    })

    void t.test(`${label}: RST both ways`, { timeout: STEP_TIMEOUT_MS }, async (tt) => {
      const f = await setup(tt, maker, ourRole)

      const a = await establishedFromOurs(f)
      const ourErr = nextError(a.ourStream)
      a.theirStream.destroy()
      const e1 = await ourErr
      tt.equal(
        e1.code,
        'HOPGATE_ERR_YAMUX_STREAM_RESET',
        'theirs reset -> ours errors STREAM_RESET',
      )

      const b = await establishedFromTheirs(f)
      const ourErr2 = nextError(b.ourStream)
      b.theirStream.destroy()
      tt.equal(
        (await ourErr2).code,
        'HOPGATE_ERR_YAMUX_STREAM_RESET',
        'same on a stream theirs opened',
      )

      const c = await establishedFromOurs(f)
      const theirErr = nextError(c.theirStream)
      c.ourStream.destroy()
      tt.equal(
        (await theirErr).name,
        'StreamResetError',
        'ours destroy() -> theirs sees a remote reset',
      )

      const d = await establishedFromTheirs(f)
      const theirErr2 = nextError(d.theirStream)
      d.ourStream.destroy()
      tt.equal((await theirErr2).name, 'StreamResetError', 'same on a stream theirs opened')

      // the session survives stream resets
      const e = await establishedFromOurs(f)
      e.ourStream.end()
      e.theirStream.end()
      await Promise.all([readAll(e.ourStream), readAll(e.theirStream)])
      tt.notOk(f.ours.closed, 'ours session still open')
    })

    void t.test(`${label}: ping both ways`, { timeout: STEP_TIMEOUT_MS }, async (tt) => {
      const f = await setup(tt, maker, ourRole)
      const rtt = await f.ours.ping()
      tt.type(rtt, 'number', 'ours ping() answered by theirs')
      tt.ok(rtt >= 0, `ours rtt ${rtt} ms`)
      const theirRtt = await f.theirs.ping()
      tt.type(theirRtt, 'number', 'theirs ping answered by ours')
      const again = await Promise.all([f.ours.ping(), f.theirs.ping(), f.ours.ping()])
      tt.equal(again.length, 3, 'concurrent pings both ways all answered')
    })

    void t.test(
      `${label}: 100 concurrent streams each way, echoed`,
      { timeout: STEP_TIMEOUT_MS },
      async (tt) => {
        const f = await setup(tt, maker, ourRole)
        const echo = (s: Duplex): void => {
          s.pipe(s)
        }
        const ourEcho = (async () => {
          for (let i = 0; i < 100; i++) echo(await f.ourInbound())
        })()
        const theirEcho = (async () => {
          for (let i = 0; i < 100; i++) echo(await f.theirInbound())
        })()
        const roundTrip = async (s: Duplex, msg: string): Promise<string> => {
          s.end(msg)
          return String(await readAll(s))
        }
        const fromOurs = Array.from({ length: 100 }, (_, i) =>
          roundTrip(f.ours.openStream(), `ours #${i} `.repeat(i + 1)),
        )
        const fromTheirs = Array.from({ length: 100 }, async (_, i) =>
          roundTrip(await f.theirs.openStream(), `theirs #${i} `.repeat(i + 1)),
        )
        const got = await Promise.all([...fromOurs, ...fromTheirs])
        tt.same(
          got,
          [
            ...Array.from({ length: 100 }, (_, i) => `ours #${i} `.repeat(i + 1)),
            ...Array.from({ length: 100 }, (_, i) => `theirs #${i} `.repeat(i + 1)),
          ],
          'every stream echoed its own bytes, both directions',
        )
        await Promise.all([ourEcho, theirEcho])
        tt.equal(f.errors.size, 0, 'no stream errored')
      },
    )

    void t.test(
      `${label}: ours close() ends theirs session`,
      { timeout: STEP_TIMEOUT_MS },
      async (tt) => {
        const f = await setup(tt, maker, ourRole)
        const a = await establishedFromOurs(f)
        const theirSideClosed = once(a.theirStream, 'close')
        f.ours.close()
        await theirSideClosed
        tt.equal(f.theirs.muxer.status, 'closed', 'theirs muxer closed on ours GoAway')
        await tt.rejects(
          f.theirs.openStream(),
          { name: 'MuxerClosedError' },
          'theirs can no longer open',
        )
        tt.ok(a.ourStream.destroyed, 'ours close() tore down ours stream')
      },
    )

    void t.test(
      `${label}: theirs close() ends ours session cleanly`,
      { timeout: STEP_TIMEOUT_MS },
      async (tt) => {
        const f = await setup(tt, maker, ourRole)
        const a = await establishedFromOurs(f)
        a.ourStream.end()
        a.theirStream.end()
        await Promise.all([readAll(a.ourStream), readAll(a.theirStream)])
        const goaway = once(f.ours, 'goaway') as Promise<[number]>
        const closed = once(f.ours, 'close') as Promise<[Error | undefined]>
        await f.theirs.close()
        tt.equal((await goaway)[0], 0, 'theirs close() -> ours sees GoAway(normal)')
        const [err] = await closed
        tt.equal(
          err,
          undefined,
          'ours session closes cleanly when theirs closes with no streams open',
        )
      },
    )

    void t.test(`${label}: GoAway crossing an open`, { timeout: STEP_TIMEOUT_MS }, async (tt) => {
      // theirs GoAway and ours SYN in the same tick: theirs must refuse the SYN with RST, which ours
      // reports as a refused (never acknowledged) open
      const f = await setup(tt, maker, ourRole)
      f.theirs.goAway()
      const s = f.ours.openStream()
      const err = nextError(s)
      s.write('too late')
      tt.equal(
        (await err).code,
        'HOPGATE_ERR_YAMUX_STREAM_REFUSED',
        'ours open refused by theirs RST',
      )

      // ours GoAway and theirs SYN in the same tick: ours refuses the SYN (RST) and never accepts
      // it. (libp2p drops the stream itself as soon as it reads our GoAway, before the RST lands.)
      const g = await setup(tt, maker, ourRole)
      const opening = g.theirs.openStream()
      g.ours.goAway()
      const theirStream = await opening
      theirStream.on('error', () => {})
      if (!theirStream.closed) await once(theirStream, 'close')
      await g.ours.ping() // ours has now read everything theirs sent before the pong
      tt.equal(g.ours.streamCount, 0, 'ours did not accept theirs SYN after its own GoAway')
      tt.notOk(g.ours.closed, 'ours session still open')
    })

    void t.test(`${label}: GoAway from ours`, { timeout: STEP_TIMEOUT_MS }, async (tt) => {
      const f = await setup(tt, maker, ourRole)
      const a = await establishedFromOurs(f)
      const theirSideClosed = once(a.theirStream, 'close')
      f.ours.goAway()
      tt.throws(
        () => f.ours.openStream(),
        { code: 'HOPGATE_ERR_YAMUX_GOING_AWAY' },
        'ours opens refused locally',
      )
      // libp2p processes GoAway(normal) by closing every stream and the muxer; its stream close is
      // the observable sign the frame has been processed.
      await theirSideClosed
      await tt.rejects(
        f.theirs.openStream(),
        { name: 'MuxerClosedError' },
        'theirs new opens fail after ours GoAway',
      )
      tt.notOk(a.ourStream.destroyed, 'ours goAway() does not touch ours existing stream')
      tt.notOk(f.ours.closed, 'ours session stays open after goAway()')
      tt.ok(a.ourStream.write('still writable'), 'ours existing stream still accepts writes')
      tt.comment(
        'libp2p quirk: it closed its existing streams on GoAway(normal); not asserting they work',
      )
    })

    void t.test(`${label}: GoAway from theirs`, { timeout: STEP_TIMEOUT_MS }, async (tt) => {
      const f = await setup(tt, maker, ourRole)
      const a = await establishedFromOurs(f)
      const b = await establishedFromTheirs(f)
      const goaway = once(f.ours, 'goaway') as Promise<[number]>
      f.theirs.goAway()
      const [code] = await goaway
      tt.equal(code, 0, "ours 'goaway' event fires with code 0 (normal)")
      tt.throws(
        () => f.ours.openStream(),
        { code: /^HOPGATE_ERR_YAMUX/ },
        'ours openStream() throws a typed yamux error',
      )
      await tt.rejects(
        f.ours.open(),
        { code: /^HOPGATE_ERR_YAMUX/ },
        'ours open() rejects with a typed yamux error',
      )
      for (const [name, s] of [
        ['stream ours opened', a],
        ['stream theirs opened', b],
      ] as const) {
        s.ourStream.write('after goaway')
        tt.equal(
          String(await readExactly(s.theirStream, 12)),
          'after goaway',
          `${name}: ours -> theirs still works`,
        )
        s.theirStream.write('after goaway too')
        tt.equal(
          String(await readExactly(s.ourStream, 16)),
          'after goaway too',
          `${name}: theirs -> ours still works`,
        )
        s.ourStream.end()
        s.theirStream.end()
        await Promise.all([readAll(s.ourStream), readAll(s.theirStream)])
      }
      tt.equal(f.errors.size, 0, 'no stream errored')
    })
  }
}
