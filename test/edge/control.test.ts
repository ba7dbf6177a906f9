// Edge and agent control handshakes over a real mutual-TLS yamux session: registration with a
// lease, route claims and epochs in the welcome, heartbeats renewing the lease, route updates
// reaching the agent (fencing), a hello that names another runner, and user streams end to end.
import t from 'tap'
import { echoServer } from '../helpers/echo.js'
import { once } from 'node:events'
import { systemClock, type ManualClock } from '../../shared/clock.js'
import { connPairs } from '../helpers/conn-pairs.js'
import { testConfig, type TapTest } from '../helpers/yamux-pair.js'
import { Session } from '../../shared/yamux/index.js'
import { SessionTable } from '../../edge/tunnel/sessions.js'
import { StreamOpener } from '../../edge/tunnel/opener.js'
import { edgeHandshake } from '../../edge/tunnel/control.js'
import { Router } from '../../edge/routing/router.js'
import { TargetRegistry } from '../../agent/registry.js'
import { EpochTable } from '../../agent/streams.js'
import { agentHandshake } from '../../agent/control.js'
import { openStore, project, tempStateDir } from './routing-helpers.js'

const P = project(7)
const GiB = 1024 ** 3

async function setup(tt: TapTest, helloRunnerId?: string) {
  const echoPort = await echoServer(tt)
  const store = await openStore(tt, await tempStateDir(tt), systemClock as unknown as ManualClock)
  const sessions = new SessionTable()
  const pair = await connPairs.find((m) => m.name === 'tls')!.make()
  const edgeSession = new Session(pair.b, { role: 'server', config: testConfig })
  const agentSession = new Session(pair.a, { role: 'client', config: testConfig })
  tt.teardown(async () => (edgeSession.close(), agentSession.close(), await pair.close()))
  const registry = new TargetRegistry()
  registry.set(P, { host: '127.0.0.1', allowedPorts: [echoPort] })
  const epochs = new EpochTable()
  const edgeDone = edgeHandshake(
    edgeSession,
    { runnerId: 'runner-a', connector: 'reverse' },
    { edgeId: 'edge-1', store, sessions, heartbeatIntervalMs: 100, leaseTtlMs: 1000 },
  )
  const agentDone = agentHandshake(agentSession, {
    registry,
    epochs,
    slot: 0,
    report: () => ({
      capacity: { maxProjects: 10, cpus: 2, memoryBytes: 8 * GiB },
      storage: { freeBytes: 50 * GiB, totalBytes: 100 * GiB },
    }),
    ...(helloRunnerId ? { runnerId: helloRunnerId } : {}),
  })
  return {
    store,
    sessions,
    edgeSession,
    agentSession,
    registry,
    epochs,
    edgeDone,
    agentDone,
    echoPort,
  }
}

t.test(
  'hello/welcome: registered with a lease, hosted project claimed, epoch handed over',
  async (tt) => {
    const env = await setup(tt)
    await env.edgeDone
    const control = await env.agentDone
    tt.equal(control.edgeId, 'edge-1')
    const runner = await env.store.getRunner('runner-a')
    tt.ok(runner, 'runner registered')
    tt.equal(runner?.projects, 1)
    const route = await env.store.getRoute(P)
    tt.equal(
      route?.runner,
      'runner-a',
      'a hosted project without a route is claimed for its runner',
    )
    tt.equal(env.epochs.get(P), route?.epoch, 'the agent holds the epoch from the welcome')
    tt.equal(
      env.sessions.pick('runner-a')?.session,
      env.edgeSession,
      'session table knows the session',
    )

    const before = (await env.store.getRunner('runner-a'))!.lastHeartbeatAt
    await new Promise((r) => setTimeout(r, 350))
    const after = (await env.store.getRunner('runner-a'))!.lastHeartbeatAt
    tt.ok(after > before, 'heartbeats renewed the lease')
    tt.ok((control.rttMs() ?? -1) >= 0, 'the agent measured the control RTT')

    const moved = await env.store.casRoute(P, route!.epoch, {
      runner: 'runner-a',
      state: 'draining',
    })
    for (let i = 0; i < 100 && env.epochs.get(P) !== moved.epoch; i++)
      await new Promise((r) => setTimeout(r, 10))
    tt.equal(env.epochs.get(P), moved.epoch, 'a route change reached the agent as routeUpdate')

    const opener = new StreamOpener({
      router: new Router({ store: env.store, clock: systemClock }),
      sessions: env.sessions,
    })
    const { stream } = await opener.open({
      project: P,
      service: 'port',
      port: env.echoPort,
      clientAddress: '127.0.0.1:1',
    })
    stream.end('ping through the tunnel')
    const chunks: Buffer[] = []
    stream.on('data', (c: Buffer) => chunks.push(c))
    stream.resume() // the opener hands the stream over paused, at the first payload byte
    await once(stream, 'end')
    tt.equal(Buffer.concat(chunks).toString(), 'ping through the tunnel')
  },
)

t.test('a hello naming another runner than the certificate is refused', async (tt) => {
  const env = await setup(tt, 'runner-b')
  await tt.rejects(env.edgeDone, { code: 'HOPGATE_ERR_CONTROL_ID_MISMATCH' })
  await tt.rejects(env.agentDone, { code: 'HOPGATE_ERR_CONTROL_REFUSED' })
  tt.equal(await env.store.getRunner('runner-a'), undefined, 'nothing registered')
  tt.equal(env.sessions.size, 0, 'no session registered')
})
