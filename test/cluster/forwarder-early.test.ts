// Forwarder.forward with a user's early bytes: the first candidate edge refuses (no session
// there, 0x80) after the preamble, the header and the early bytes reached it; the second gets
// all three again and answers. The peer links are real yamux sessions over in-memory pairs, the
// receiving edges scripted; the store and membership are the two lookups forward() makes.
import t from 'tap'
import { PassThrough } from 'node:stream'
import { connPairs } from '../helpers/conn-pairs.js'
import { sessionPair, type SessionPair } from '../helpers/yamux-pair.js'
import { Forwarder } from '../../edge/cluster/forwarder.js'
import { decodePreamble, PeerStatus } from '../../edge/cluster/peer-wire.js'
import type { ClusterMember } from '../../edge/cluster/member.js'
import type { PeerLinks } from '../../edge/cluster/peer-link.js'
import type { RouteStore } from '../../edge/routing/store.js'
import type { EdgeRecord } from '../../edge/cluster/registry.js'
import type { YamuxStream } from '../../shared/yamux/index.js'
import { encodeOpenStatus, OpenStatus } from '../../shared/tunnel/open-status.js'
import type { EarlySender } from '../../shared/tunnel/early-data.js'

const HEADER = Buffer.from('HEADER-BYTES')

/** What a receiving edge saw on one forwarded stream before it answered. */
function scripted(
  pair: SessionPair,
  answer: number,
  seen: Array<{ edge: string; runner: string; rest: string }>,
  edge: string,
): void {
  pair.server.on('stream', (s: YamuxStream) => {
    // The forwarder resets a refused stream once it has read the refusal.
    s.on('error', () => {})
    let buf = Buffer.alloc(0)
    s.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c])
      const got = decodePreamble(buf)
      // Answer once the header and the 5 early bytes are all here.
      if (!got || got.rest.length < HEADER.length + 5) return
      s.removeAllListeners('data')
      seen.push({ edge, runner: got.preamble.runnerId, rest: got.rest.toString() })
      s.end(Buffer.from([answer]))
    })
  })
}

t.test('a refusing edge is skipped and the next one gets the early bytes again', async (tt) => {
  const maker = connPairs.find((m) => m.name === 'memory')!
  const pairs: Record<string, SessionPair> = {}
  const seen: Array<{ edge: string; runner: string; rest: string }> = []
  for (const [edge, answer] of [
    ['edge-a', PeerStatus.NoSession],
    ['edge-b', encodeOpenStatus(OpenStatus.Ok)[0]!],
  ] as const) {
    const pair = await sessionPair(maker)
    tt.teardown(() => pair.close())
    pairs[edge] = pair
    scripted(pair, answer, seen, edge)
  }
  const record = (edgeId: string): EdgeRecord =>
    ({ edgeId, peerAddress: `${edgeId}:7445`, draining: false }) as unknown as EdgeRecord
  const forwarder = new Forwarder({
    // An edge that never answers (early bytes missing) fails the test in 2 s, not 10.
    statusTimeoutMs: 2000,
    // The runner record lists edge-a first (both rank 0 would shuffle; edge-b is not listed).
    store: {
      getRunner: () => Promise.resolve({ edges: ['edge-a'] }),
    } as unknown as RouteStore,
    member: { peers: () => [record('edge-b'), record('edge-a')] } as unknown as ClusterMember,
    links: {
      get: (edgeId: string) => Promise.resolve(pairs[edgeId]!.client),
    } as unknown as PeerLinks,
  })
  // The user's bytes so far, as EarlyData hands them to each try.
  const early: EarlySender = { attach: (s) => void s.write('early') }
  const stream = await forwarder.forward({ runner: 'runner-x', header: HEADER, early })
  tt.same(
    seen,
    [
      { edge: 'edge-a', runner: 'runner-x', rest: 'HEADER-BYTESearly' },
      { edge: 'edge-b', runner: 'runner-x', rest: 'HEADER-BYTESearly' },
    ],
    'both tries carried preamble, header and the early bytes; the refusal was skipped',
  )
  tt.ok(stream.readable, 'the answering stream is handed back after its ok status')
  stream.pipe(new PassThrough()).resume()
  stream.destroy()
})
