// When a tunnel session ends (revocation: GoAway then close; a cut transport: no goodbye at all)
// or one stream is reset, the agent must close the target sockets it dialed for those streams
// at once, not at agent.close(). Real edge, agent, raw TCP ingress and a target that counts its
// open connections; the user's sockets must close too, and the session's streams, timers and
// the process's TCP handles go back to where they were before the connections were opened.
import t from 'tap'
import net from 'node:net'
import { once } from 'node:events'
import { parseTcpMapping } from '../../edge/ingress/tcp.js'
import type { TapTest } from '../helpers/yamux-pair.js'
import { echoClient, enroll, testAgent, testEdge, until } from './_cluster.js'

const P = '6f1c2b7e-3d4a-4c5b-9e8f-0a1b2c3d4e5f'
const N = 8

/** An echo target that keeps the set of its open connections. */
async function countingTarget(tt: TapTest) {
  const open = new Set<net.Socket>()
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    open.add(s)
    s.once('close', () => open.delete(s))
    s.on('error', () => {})
    s.pipe(s)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  tt.teardown(() => {
    for (const s of open) s.destroy()
    return new Promise<void>((r) => server.close(() => r()))
  })
  return { open, port: (server.address() as net.AddressInfo).port }
}

/** A TCP relay between agent and edge whose connections the test can cut (no FIN, no GoAway). */
async function cuttableRelay(tt: TapTest, to: string) {
  const [host, port] = to.split(':') as [string, string]
  const pairs = new Set<[net.Socket, net.Socket]>()
  const server = net.createServer((a) => {
    const b = net.connect(Number(port), host)
    const pair: [net.Socket, net.Socket] = [a, b]
    pairs.add(pair)
    const down = (): void => {
      pairs.delete(pair)
      a.destroy()
      b.destroy()
    }
    a.on('error', down).on('close', down)
    b.on('error', down).on('close', down)
    a.pipe(b)
    b.pipe(a)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  tt.teardown(() => {
    cut()
    return new Promise<void>((r) => server.close(() => r()))
  })
  const cut = (): void => {
    // resetAndDestroy: an RST to both ends, the way a dead path or a middlebox looks.
    for (const [a, b] of pairs) {
      a.resetAndDestroy()
      b.resetAndDestroy()
    }
  }
  return { address: `127.0.0.1:${(server.address() as net.AddressInfo).port}`, cut }
}

const tcpHandles = (): number =>
  process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length

async function setup(tt: TapTest, runnerId: string, viaRelay: boolean) {
  const target = await countingTarget(tt)
  const e = await testEdge(tt, { tcp: [parseTcpMapping(`127.0.0.1:0=${P}:${target.port}`)] })
  const relay = viaRelay ? await cuttableRelay(tt, e.tunnel) : undefined
  const dir = await enroll(tt, e, runnerId)
  const agent = await testAgent(tt, {
    stateDir: dir,
    edges: [relay?.address ?? e.tunnel],
    projects: { [P]: { host: '127.0.0.1', allowedPorts: [target.port] } },
    // Reconnects land quickly so the test can compare a settled state before and after.
    retireGraceMs: 1000,
  })
  await until(() => e.edge.sessions.pick(runnerId) !== undefined, 'session up')
  await until(() => agent.connector!.sessions().length === 1, 'the agent holds it too')
  const tcpPort = e.edge.tcp[0]!.address.port
  return { target, e, relay, agent, tcpPort }
}

/** N user connections, each proven live by an echo, with a flag set when each one closes. */
async function openUsers(port: number) {
  const users = await Promise.all(Array.from({ length: N }, () => echoClient(port)))
  for (const [i, u] of users.entries()) {
    if ((await u.roundTrip(`hello ${i}`)) !== `hello ${i}`) throw new Error('bad echo')
  }
  return users
}

for (const how of ['revoked', 'transport cut'] as const) {
  t.test(`session ${how}: every target socket of its streams closes at once`, async (tt) => {
    const runnerId = how === 'revoked' ? 'runner-rv' : 'runner-cut'
    const { target, e, relay, agent, tcpPort } = await setup(tt, runnerId, how !== 'revoked')
    const first = e.edge.sessions.pick(runnerId)!
    const agentSession = agent.connector!.sessions()[0]!.session
    const handlesBefore = tcpHandles()
    const timersBefore = agentSession.stats().timers

    const users = await openUsers(tcpPort)
    tt.equal(target.open.size, N, `the target holds ${N} connections`)
    tt.equal(agentSession.streamCount, N + 1, 'the agent session holds them (and control)')
    let usersClosed = 0
    for (const u of users) void u.closed.then(() => usersClosed++)

    if (how === 'revoked') {
      tt.equal(e.edge.sessions.revoke(runnerId), 1, 'one session revoked')
    } else {
      relay!.cut()
    }
    await until(() => agentSession.closed, 'the agent saw its session end')
    // Well before agent.close() (teardown): the session's end alone must release them.
    await until(() => target.open.size === 0, 'every target connection closed', 3000)
    tt.equal(target.open.size, 0, `all ${N} target connections closed`)
    await until(() => usersClosed === N, 'every user connection closed', 3000)
    tt.equal(usersClosed, N, `all ${N} user connections closed`)
    tt.equal(agentSession.streamCount, 0, 'no streams left on the dead session')

    // The agent reconnects (revocation is edge-side only here: the session table dropped it,
    // the certificate is still good) and the process is back where it was.
    if (how === 'revoked') {
      await until(() => {
        const now = e.edge.sessions.pick(runnerId)
        return now !== undefined && now.session !== first.session
      }, 'a new session')
    } else {
      await until(() => e.edge.sessions.pick(runnerId)?.session !== first.session, 'old dropped')
      await until(() => e.edge.sessions.pick(runnerId) !== undefined, 'a new session')
    }
    await until(() => agent.connector!.sessions().length === 1, 'agent slot refilled')
    const fresh = agent.connector!.sessions()[0]!.session
    tt.not(fresh, agentSession, 'a fresh agent session')
    await until(() => tcpHandles() === handlesBefore, 'TCP handles back to the baseline', 3000)
    tt.equal(tcpHandles(), handlesBefore, 'no TCP handle leaked (sockets of the dead session)')
    tt.equal(fresh.stats().timers, timersBefore, 'the fresh session holds no more timers')
    const again = await echoClient(tcpPort)
    tt.equal(await again.roundTrip('after'), 'after', 'the project is reachable again')
    await again.end()
  })
}

t.test('a drained session closed at the end of its grace: its target sockets close', async (tt) => {
  // The agent's own clean close (no error on the session): its streams end without an error
  // event, which is the case the target sockets used to outlive.
  const { target, e, agent, tcpPort } = await setup(tt, 'runner-gr', false)
  const old = agent.connector!.sessions()[0]!.session
  const users = await openUsers(tcpPort)
  tt.equal(target.open.size, N, `the target holds ${N} connections`)
  let usersClosed = 0
  for (const u of users) void u.closed.then(() => usersClosed++)
  tt.equal(e.edge.adviseDrain({ reason: 'test' }, 'runner-gr'), 1, 'drain advised')
  await until(() => old.closed, 'the old session retired after its grace', 5000)
  await until(() => target.open.size === 0, 'every target connection closed', 3000)
  tt.equal(target.open.size, 0, `all ${N} target connections of the retired session closed`)
  await until(() => usersClosed === N, 'every user connection closed', 3000)
  tt.equal(usersClosed, N, `all ${N} user connections closed`)
  const again = await echoClient(tcpPort)
  tt.equal(await again.roundTrip('after'), 'after', 'the replacement session serves')
  await again.end()
})

t.test('a reset stream ends its target socket; the others stay', async (tt) => {
  const { target, agent, tcpPort } = await setup(tt, 'runner-rst', false)
  const agentSession = agent.connector!.sessions()[0]!.session
  const users = await openUsers(tcpPort)
  tt.equal(target.open.size, N, `the target holds ${N} connections`)
  // An RST from the user: the edge's ingress socket errors, the edge resets the stream.
  for (const u of users.slice(0, N / 2)) u.socket.resetAndDestroy()
  await until(() => target.open.size === N / 2, 'half the target connections closed', 3000)
  tt.equal(target.open.size, N / 2, 'exactly the reset ones closed')
  tt.equal(agentSession.streamCount, N / 2 + 1, 'their streams are gone on the agent')
  for (const [i, u] of users.slice(N / 2).entries()) {
    tt.equal(await u.roundTrip(`still ${i}`), `still ${i}`, `survivor ${i} works`)
  }
  for (const u of users.slice(N / 2)) await u.end()
  await until(() => target.open.size === 0, 'the rest closed gracefully')
  tt.equal(target.open.size, 0, 'no target connection left')
})
