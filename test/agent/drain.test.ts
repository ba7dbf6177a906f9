// The agent's reaction to drain advice, over real loopback sockets: it opens the replacement
// session first (another configured edge when there is one, else the same edge), then sends
// GoAway on the old one and closes it only when its in-flight streams are done. Asserted: the
// in-flight stream keeps working, new streams take the new session, and the edge always has a
// session to pick for the runner.
import t from 'tap'
import { parseTcpMapping } from '../../edge/ingress/tcp.js'
import { echoServer } from '../helpers/echo.js'
import { echoClient, enroll, testAgent, testEdge, until } from './_cluster.js'

const P = '0f8fad5b-d9cb-469f-a165-70867728950e'

t.test('drain on the only edge: replacement first, in-flight stream survives', async (tt) => {
  const echoPort = await echoServer(tt)
  const e = await testEdge(tt, { tcp: [parseTcpMapping(`127.0.0.1:0=${P}:${echoPort}`)] })
  const dir = await enroll(tt, e, 'runner-d')
  const agent = await testAgent(tt, {
    stateDir: dir,
    edges: [e.tunnel],
    projects: { [P]: { host: '127.0.0.1', allowedPorts: [echoPort] } },
  })
  await until(() => e.edge.sessions.pick('runner-d') !== undefined, 'session up')
  const old = e.edge.sessions.pick('runner-d')!
  // "No moment without a session": every time the edge loses a session of this runner, another
  // one must already be there to pick.
  let gaps = 0
  e.edge.sessions.on('removed', (entry) => {
    if (entry.runnerId === 'runner-d' && !e.edge.sessions.pick('runner-d')) gaps++
  })
  const tcpPort = e.edge.tcp[0]!.address.port
  const inflight = await echoClient(tcpPort)
  tt.equal(await inflight.roundTrip('before drain'), 'before drain', 'stream up')
  tt.equal(old.session.streamCount, 2, 'control + the in-flight stream on the old session')

  tt.equal(
    e.edge.adviseDrain({ reason: 'edge shutting down' }, 'runner-d'),
    1,
    'one session advised',
  )
  await until(() => e.edge.sessions.pick('runner-d') !== old, 'replacement registered')
  const replacement = e.edge.sessions.pick('runner-d')!
  tt.not(replacement.session, old.session, 'a new session')
  tt.equal(replacement.slot, old.slot, 'in the same slot')
  tt.notOk(old.session.closed, 'the old session is not closed while a stream is in flight')
  tt.equal(await inflight.roundTrip('during drain'), 'during drain', 'in-flight stream still works')

  const fresh = await echoClient(tcpPort)
  tt.equal(await fresh.roundTrip('new stream'), 'new stream', 'a new stream works')
  tt.equal(replacement.session.streamCount, 2, 'and went over the new session')
  tt.equal(old.session.streamCount, 2, 'not the old one')

  await inflight.end()
  await until(() => old.session.closed, 'old session closed once its stream finished')
  tt.equal(gaps, 0, 'the edge always had a session for the runner')
  tt.equal(agent.controls().length, 1, 'the agent holds one control stream again')
  tt.equal(await e.sample('hopgate_edge_drain_advice_total'), 1, 'edge counted the advice')
  await fresh.end()
})

t.test('drain with two edges: the slot moves to the other edge', async (tt) => {
  const echoPort = await echoServer(tt)
  const a = await testEdge(tt, { tcp: [parseTcpMapping(`127.0.0.1:0=${P}:${echoPort}`)] })
  // A second edge on the same state dir: same CA and route store file would clash, so it gets
  // its own dir with a copy of the PKI.
  const { cp } = await import('node:fs/promises')
  const { tempDir } = await import('../helpers/echo.js')
  const bDir = await tempDir(tt, 'edge-b')
  await cp(`${a.dir}/pki`, `${bDir}/pki`, { recursive: true })
  const b = await testEdge(tt, { tcp: [parseTcpMapping(`127.0.0.1:0=${P}:${echoPort}`)] }, bDir)
  const dir = await enroll(tt, a, 'runner-m')
  const events: Array<[string, Record<string, unknown>]> = []
  const agent = await testAgent(tt, {
    stateDir: dir,
    edges: [a.tunnel, b.tunnel],
    projects: { [P]: { host: '127.0.0.1', allowedPorts: [echoPort] } },
    onEvent: (ev, d) => events.push([ev, d]),
  })
  await until(() => a.edge.sessions.pick('runner-m') !== undefined, 'session to edge A')
  tt.equal(b.edge.sessions.sessions('runner-m').length, 0, 'none to edge B yet (one slot)')
  const old = a.edge.sessions.pick('runner-m')!
  a.edge.adviseDrain({ reason: 'maintenance' })
  await until(() => b.edge.sessions.pick('runner-m') !== undefined, 'session to edge B')
  await until(() => old.session.closed, 'idle old session retired')
  tt.equal(a.edge.sessions.sessions('runner-m').length, 0, 'edge A has let it go')
  tt.equal(agent.connector!.sessions()[0]!.edge, b.tunnel, 'the slot is on edge B now')
  const client = await echoClient(b.edge.tcp[0]!.address.port)
  tt.equal(await client.roundTrip('via B'), 'via B', 'traffic flows through edge B')
  await client.end()
  tt.ok(
    events.some(([ev, d]) => ev === 'drain' && d.replacing === true),
    'the agent reported acting on the advice',
  )
})
