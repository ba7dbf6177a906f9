// Process-level failure tests with real processes and sockets (issue 3, "kill -9 of the agent" and
// "an edge restart"): the edge and the agent each run as their own node process
// (fixtures/edge-proc.ts, fixtures/agent-proc.ts); the echo target and the clients are here.
import t, { type Test } from 'tap'
import net from 'node:net'
import { once } from 'node:events'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import {
  alive,
  echoServer,
  enroll,
  initEdgeState,
  roundTrip,
  roundTripWithin,
  spawnProc,
  tempDir,
  type Line,
} from './fixtures/procs.js'

const P = '6ba7b810-9dad-41d1-80b4-00c04fd430c8'
const RUNNER = 'runner-a'
const CYCLES = 20

interface EdgeReady extends Line {
  tunnel: { host: string; port: number }
  tcp: Array<{ host: string; port: number }>
}

async function routeOnDisk(edgeDir: string): Promise<{ runner: string; epoch: number }> {
  const file = JSON.parse(await readFile(join(edgeDir, 'routes.json'), 'utf8')) as {
    routes: Array<{ project: string; runner: string; epoch: number }>
  }
  const r = file.routes.find((x) => x.project === P)
  if (!r) throw new Error(`no route for ${P} in routes.json`)
  return { runner: r.runner, epoch: r.epoch }
}

/** A client connection through the ingress, proven live by one echo, left open. */
async function openLive(port: number): Promise<net.Socket> {
  const s = net.connect(port, '127.0.0.1')
  s.on('error', () => {})
  await once(s, 'connect')
  s.write('live?')
  const [chunk] = (await Promise.race([
    once(s, 'data'),
    once(s, 'close').then(() => {
      throw new Error('closed before the echo')
    }),
  ])) as [Buffer]
  if (chunk.toString() !== 'live?') throw new Error(`unexpected echo ${chunk.toString()}`)
  return s
}

async function setup(tt: Test) {
  const edgeDir = await tempDir(tt, 'hopgate-e2e-edge-')
  const agentDir = await tempDir(tt, 'hopgate-e2e-agent-')
  const echo = await echoServer(tt)
  const { edgeCaFingerprint } = await initEdgeState(edgeDir)
  const edgeArgs = (tunnelPort: number, tcpPort: number) => ({
    stateDir: edgeDir,
    tunnelHost: '127.0.0.1',
    tunnelPort,
    tcp: [`127.0.0.1:${tcpPort}=${P}:${echo.port}`],
    heartbeatIntervalMs: 200,
  })
  const edge = await spawnProc(tt, 'edge-proc', edgeArgs(0, 0))
  const ready = edge.ready as EdgeReady
  await enroll({
    edgeDir,
    edgeCaFingerprint,
    host: '127.0.0.1',
    port: ready.tunnel.port,
    runnerId: RUNNER,
    agentDir,
  })
  const agentArgs = {
    stateDir: agentDir,
    edges: [`127.0.0.1:${ready.tunnel.port}`],
    slots: 2,
    projects: { [P]: { host: '127.0.0.1', allowedPorts: [echo.port] } },
  }
  return { edgeDir, agentDir, edge, ready, edgeArgs, agentArgs }
}

t.test(
  'kill -9 of the agent: open connections close at once, a restart serves again',
  async (tt) => {
    const { edge, ready, agentArgs } = await setup(tt)
    const ingress = ready.tcp[0]!.port
    const closeMs: number[] = []
    const restartMs: number[] = []
    const startMs: number[] = []
    for (let i = 0; i < CYCLES; i++) {
      const spawnedAt = Date.now()
      const agent = await spawnProc(tt, 'agent-proc', agentArgs)
      const readyAt = Date.now()
      startMs.push(readyAt - spawnedAt)
      await roundTripWithin(ingress, 5000)
      restartMs.push(Date.now() - readyAt)

      const client = await openLive(ingress)
      const closed = once(client, 'close')
      const killedAt = Date.now()
      const exit = await agent.kill('SIGKILL')
      if (exit.signal !== 'SIGKILL') tt.fail(`agent exit ${JSON.stringify(exit)}`)
      if (alive(agent.pid)) tt.fail(`agent pid ${agent.pid} still alive after SIGKILL`)
      let timer: NodeJS.Timeout | undefined
      const outcome = await Promise.race([
        closed.then(() => 'closed'),
        new Promise((r) => (timer = setTimeout(() => r('hang'), 2000))),
      ])
      clearTimeout(timer)
      client.destroy()
      if (outcome !== 'closed') {
        tt.fail(`cycle ${i}: the client connection still open 2 s after kill -9`)
        break
      }
      closeMs.push(Date.now() - killedAt)
    }
    tt.equal(closeMs.length, CYCLES, `${CYCLES} kill -9 cycles, each open connection closed`)
    tt.ok(
      Math.max(...closeMs) < 2000,
      `connections closed within ${Math.max(...closeMs)} ms of kill -9 (max)`,
    )
    tt.ok(
      restartMs.every((ms) => ms < 5000),
      `a new connection succeeded within ${Math.max(...restartMs)} ms of each agent restart ` +
        `(max; from its ready line, after a node start of ${Math.max(...startMs)} ms max)`,
    )
    tt.notOk(edge.hasExited(), 'the edge process lived through it all')
  },
)

// Regression: with every session down the connector sleeps in backoff on an unref'd timer; a
// running connector now holds the process open itself, so the agent outlives the edge.
t.test('the agent process outlives an edge outage', async (tt) => {
  const { edge, ready, agentArgs } = await setup(tt)
  const agent = await spawnProc(tt, 'agent-proc', agentArgs)
  await roundTripWithin(ready.tcp[0]!.port, 5000)
  await edge.kill('SIGTERM')
  let timer: NodeJS.Timeout | undefined
  const outcome = await Promise.race([
    agent.exited.then((e) => `exited ${JSON.stringify(e)}`),
    new Promise<string>((r) => (timer = setTimeout(() => r('running'), 2000))),
  ])
  clearTimeout(timer)
  tt.equal(outcome, 'running', 'the agent keeps running 2 s after its edge went away')
})

t.test('edge restart: the agent comes back and the route survives', async (tt) => {
  const { edgeDir, edge, ready, edgeArgs, agentArgs } = await setup(tt)
  const ingress = ready.tcp[0]!.port
  const agent = await spawnProc(tt, 'agent-proc', agentArgs)
  await roundTripWithin(ingress, 5000)
  const before = await routeOnDisk(edgeDir)
  tt.equal(before.runner, RUNNER, 'the project is routed to the runner, on disk')

  const sessionsBefore = agent.lines.filter((l) => l.event === 'session').length
  const exit = await edge.kill('SIGTERM')
  tt.same(exit, { code: 0, signal: null }, 'the edge exits 0 on SIGTERM')
  tt.notOk(alive(edge.pid), 'the old edge pid is gone')
  await tt.rejects(roundTrip(ingress, Buffer.from('x'), 1000), 'no ingress while the edge is down')

  const restartedAt = Date.now()
  const edge2 = await spawnProc(tt, 'edge-proc', edgeArgs(ready.tunnel.port, ingress))
  const ready2 = edge2.ready as EdgeReady
  tt.same(
    [ready2.tunnel.port, ready2.tcp[0]!.port],
    [ready.tunnel.port, ingress],
    'the new edge is on the same ports',
  )
  await edge2.waitFor(
    (l) => l.event === 'session' && l.runnerId === RUNNER,
    'the agent reconnects to the restarted edge',
    10_000,
  )
  await agent.waitFor(
    (() => {
      let n = 0
      return (l: Line) => l.event === 'session' && ++n > sessionsBefore
    })(),
    'the agent reports a new session',
    10_000,
  )
  const attempts = await roundTripWithin(ingress, 10_000 - (Date.now() - restartedAt))
  tt.pass(
    `the ingress works again ${Date.now() - restartedAt} ms after the edge restart (${attempts} attempt(s))`,
  )
  tt.same(
    await routeOnDisk(edgeDir),
    before,
    'routes.json: same runner and epoch after the restart',
  )
  tt.notOk(agent.hasExited(), 'the agent process kept running')
})
