// Two yamux sessions joined over one of the test transports, with a fast test config and an
// invariant check for quiescence: no streams, no waiters, no timers left on either side.
import t from 'tap'
import { once } from 'node:events'
import type { Duplex } from 'node:stream'
import { connPairs, type ConnPairMaker } from './conn-pairs.js'
import { Session, type YamuxConfig } from '../../shared/yamux/index.js'
import type { Clock } from '../../shared/clock.js'

/** Short deadlines so timing tests finish fast; keepalive off unless a test wants it. */
export const testConfig: Partial<YamuxConfig> = {
  keepAliveIntervalMs: 0,
  pingTimeoutMs: 2000,
  streamOpenTimeoutMs: 5000,
  streamCloseTimeoutMs: 5000,
  connectionWriteTimeoutMs: 5000,
}

export interface SessionPair {
  client: Session
  server: Session
  a: Duplex
  b: Duplex
  /** Asserts both sides are quiescent (after all streams closed). */
  assertQuiescent(tt: TapTest): Promise<void>
  close(): Promise<void>
}

/** The test object tap hands to a subtest. */
export type TapTest = Parameters<Extract<Parameters<typeof t.test>[0], (...args: any[]) => any>>[0]

export async function sessionPair(
  maker: ConnPairMaker,
  opts: { config?: Partial<YamuxConfig>; serverConfig?: Partial<YamuxConfig>; clock?: Clock } = {},
): Promise<SessionPair> {
  const pair = await maker.make()
  // yamux timers are unref'd; over an in-memory pair nothing else would keep the test alive.
  const keepAlive = setInterval(() => {}, 1000)
  const client = new Session(pair.a, {
    role: 'client',
    config: { ...testConfig, ...opts.config },
    ...(opts.clock ? { clock: opts.clock } : {}),
  })
  const server = new Session(pair.b, {
    role: 'server',
    config: { ...testConfig, ...opts.config, ...opts.serverConfig },
    ...(opts.clock ? { clock: opts.clock } : {}),
  })
  return {
    client,
    server,
    a: pair.a,
    b: pair.b,
    async assertQuiescent(tt) {
      // Let in-flight FIN/RST frames land before looking.
      for (let i = 0; i < 50; i++) {
        if (
          client.streamCount === 0 &&
          server.streamCount === 0 &&
          client.stats().timers === 0 &&
          server.stats().timers === 0
        ) {
          break
        }
        await new Promise((r) => setTimeout(r, 10))
      }
      for (const [name, s] of [
        ['client', client],
        ['server', server],
      ] as const) {
        const st = s.stats()
        tt.equal(st.streams, 0, `${name}: no streams left`)
        tt.equal(st.acceptQueue, 0, `${name}: accept queue empty`)
        tt.equal(st.unacknowledgedOpens, 0, `${name}: no unacknowledged opens`)
        tt.equal(st.openWaiters, 0, `${name}: no open waiters`)
        tt.equal(st.pendingPings, 0, `${name}: no pending pings`)
        tt.equal(st.drainWaiters, 0, `${name}: no drain waiters`)
        tt.equal(st.timers, 0, `${name}: no timers armed`)
      }
    },
    async close() {
      clearInterval(keepAlive)
      client.close()
      server.close()
      await pair.close()
    },
  }
}

/** Registers `fn` once per transport (memory, tcp, tls), as hashicorp's testConnTypes does. */
export function eachTransport(
  name: string,
  fn: (tt: TapTest, maker: ConnPairMaker) => Promise<void>,
): void {
  for (const maker of connPairs) {
    void t.test(`${name} [${maker.name}]`, (tt) => fn(tt, maker))
  }
}

/** Reads to 'end' without destroying the stream (a for-await loop would, killing half-close). */
export function readAll(stream: Duplex): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    stream.on('data', (chunk: Buffer) => chunks.push(chunk))
    stream.once('end', () => resolve(Buffer.concat(chunks)))
    stream.once('error', reject)
  })
}

export async function nextStream(
  session: Session,
): Promise<import('../../shared/yamux/index.js').YamuxStream> {
  const [stream] = (await once(session, 'stream')) as [
    import('../../shared/yamux/index.js').YamuxStream,
  ]
  return stream
}
