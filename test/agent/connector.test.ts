// The reverse connector's loops on a ManualClock over in-memory pairs: slot placement on distinct
// edges, reconnect with backoff, rotation on dial failure, the keepalive watchdog, stop().
import t from 'tap'
import type { Duplex } from 'node:stream'
import { ReverseConnector } from '../../agent/connector.js'
import { ManualClock } from '../../shared/clock.js'
import { Session } from '../../shared/yamux/index.js'
import { duplexPair } from '../helpers/duplex-pair.js'
import { testConfig } from '../helpers/yamux-pair.js'

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 400 && !cond(); i++) await new Promise((r) => setTimeout(r, 5))
  if (!cond()) throw new Error(`not reached: ${what}`)
}

interface Harness {
  clock: ManualClock
  dials: string[]
  edgeSessions: Session[]
  deadEdges: Set<string>
  silentEdges: Set<string>
  connector: ReverseConnector
}

function harness(edges: string[], slots = 2, yamux = testConfig): Harness {
  const clock = new ManualClock()
  const dials: string[] = []
  const edgeSessions: Session[] = []
  const deadEdges = new Set<string>()
  const silentEdges = new Set<string>()
  const connector = new ReverseConnector({
    edges,
    slots,
    clock,
    yamux,
    backoff: { baseMs: 100, capMs: 1000, random: () => 0.5 },
    dial: async (edge): Promise<Duplex> => {
      dials.push(edge)
      if (deadEdges.has(edge)) throw new Error(`connect ECONNREFUSED ${edge}`)
      const [agentEnd, edgeEnd] = duplexPair()
      if (silentEdges.has(edge)) edgeEnd.resume()
      else edgeSessions.push(new Session(edgeEnd, { role: 'server', config: testConfig, clock }))
      return agentEnd
    },
    handshake: async () => {},
  })
  return { clock, dials, edgeSessions, deadEdges, silentEdges, connector }
}

t.test('slots land on distinct edges and come back after a session ends', async (tt) => {
  const h = harness(['e1:7443', 'e2:7443'])
  const keep = setInterval(() => {}, 1000)
  tt.teardown(async () => (clearInterval(keep), await h.connector.stop()))
  h.connector.start()
  await until(() => h.connector.sessions().length === 2, 'two sessions')
  tt.same(h.dials.sort(), ['e1:7443', 'e2:7443'], 'one slot per edge')
  h.edgeSessions[0]!.close()
  await until(() => h.connector.sessions().length === 1, 'one lost')
  tt.equal(h.dials.length, 2, 'no redial before the backoff delay')
  h.clock.advance(50) // full jitter of a 100 ms ceiling with random 0.5
  await until(() => h.connector.sessions().length === 2, 'back to two')
  tt.equal(h.dials.length, 3, 'exactly one redial')
})

t.test('a dead edge: the slot rotates to the next edge with growing backoff', async (tt) => {
  const h = harness(['e1:7443', 'e2:7443'], 1)
  const keep = setInterval(() => {}, 1000)
  tt.teardown(async () => (clearInterval(keep), await h.connector.stop()))
  h.deadEdges.add('e1:7443')
  h.connector.start()
  await until(() => h.dials.length === 1, 'first dial')
  h.clock.advance(50)
  await until(() => h.connector.sessions().length === 1, 'connected to e2')
  tt.same(h.dials, ['e1:7443', 'e2:7443'])
  tt.equal(h.connector.sessions()[0]!.edge, 'e2:7443')
})

t.test('watchdog: a silent edge fails keepalive and the slot reconnects', async (tt) => {
  const h = harness(['e1:7443'], 1, {
    ...testConfig,
    keepAliveIntervalMs: 1000,
    keepAliveJitter: 0,
    pingTimeoutMs: 500,
  })
  const keep = setInterval(() => {}, 1000)
  tt.teardown(async () => (clearInterval(keep), await h.connector.stop()))
  h.silentEdges.add('e1:7443')
  h.connector.start()
  await until(() => h.connector.sessions().length === 1, 'connected')
  const first = h.connector.sessions()[0]!.session
  h.silentEdges.clear()
  h.clock.advance(1000)
  h.clock.advance(500)
  await until(() => first.closed, 'keepalive closed the dead session')
  tt.equal((first.closeError as { code?: string }).code, 'HOPGATE_ERR_YAMUX_KEEPALIVE_TIMEOUT')
  h.clock.advance(50)
  await until(() => h.connector.sessions().length === 1 && h.dials.length === 2, 'reconnected')
  tt.not(h.connector.sessions()[0]!.session, first, 'a new session')
})

t.test('stop() ends every loop and closes every session', async (tt) => {
  const h = harness(['e1:7443'], 3)
  h.connector.start()
  await until(() => h.connector.sessions().length === 3, 'three sessions')
  const sessions = h.connector.sessions().map((s) => s.session)
  await h.connector.stop()
  tt.ok(
    sessions.every((s) => s.closed),
    'all closed',
  )
  tt.equal(h.connector.sessions().length, 0)
  tt.equal(h.clock.pending <= 3, true, 'at most the transports’ bounded close timers remain')
})

t.test('drain: replacement first, old session kept until reconnectAfterMs', async (tt) => {
  const h = harness(['e1:7443', 'e2:7443'], 1)
  const keep = setInterval(() => {}, 1000)
  tt.teardown(async () => (clearInterval(keep), await h.connector.stop()))
  h.connector.start()
  await until(() => h.connector.sessions().length === 1, 'connected')
  const first = h.connector.sessions()[0]!
  tt.equal(first.edge, 'e1:7443')
  const oldEdgeSide = h.edgeSessions[0]!
  let goAway = false
  oldEdgeSide.once('goaway', () => (goAway = true))
  tt.ok(h.connector.drain(first.session, { reconnectAfterMs: 1000 }), 'the slot takes the advice')
  tt.notOk(h.connector.drain(oldEdgeSide, {}), 'a session no slot holds is not drained')
  await until(() => h.connector.sessions()[0]?.edge === 'e2:7443', 'moved to the other edge')
  tt.same(h.dials, ['e1:7443', 'e2:7443'], 'one dial, to the other configured edge')
  await new Promise((r) => setTimeout(r, 20))
  tt.notOk(goAway, 'no GoAway before reconnectAfterMs')
  tt.notOk(first.session.closed, 'old session still open')
  h.clock.advance(1000)
  await until(() => goAway, 'GoAway reached the edge')
  tt.notOk(first.session.closed, 'not closed in the same tick as the GoAway')
  h.clock.advance(50)
  await until(() => goAway && first.session.closed, 'GoAway, then closed (no streams left)')
  tt.pass('old session retired after reconnectAfterMs')

  // A replacement that cannot come up leaves the current session serving.
  h.deadEdges.add('e1:7443')
  h.deadEdges.add('e2:7443')
  const second = h.connector.sessions()[0]!.session
  h.connector.drain(second)
  await until(() => h.dials.length === 4, 'tried the other edge and the same one')
  tt.same(h.dials.slice(2), ['e1:7443', 'e2:7443'], 'other edge first, then the same address')
  tt.equal(h.connector.sessions()[0]!.session, second, 'the current session keeps serving')
  tt.notOk(second.closed)
  h.deadEdges.clear()
  h.clock.advance(100)
  await until(() => h.connector.sessions()[0]!.session !== second, 'replaced after backoff')
  tt.pass('a later attempt replaces it')
})
