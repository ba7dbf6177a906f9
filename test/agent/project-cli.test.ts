// `hopgate agent project add|remove|list` as a user runs it: the real CLI in a child process
// against a real agent's admin socket (0600). The edge hears of each change on the control
// stream (a new project gets a route to this runner and traffic; a removed one is refused by the
// agent, default deny). The agent's --admin listener answers /healthz, /readyz and /metrics.
import t from 'tap'
import { statSync } from 'node:fs'
import net from 'node:net'
import { once } from 'node:events'
import { parseTcpMapping } from '../../edge/ingress/tcp.js'
import { PromMetrics } from '../../shared/metrics-prom.js'
import { echoServer } from '../helpers/echo.js'
import { echoClient, enroll, sampleOf, testAgent, testEdge, until } from './_cluster.js'
import { runHopgate } from '../helpers/cli.js'

const P1 = '0f8fad5b-d9cb-469f-a165-70867728950e'
const P2 = '7c9e6679-7425-40de-944b-e07fc1f90ae7'

t.test('project add, list, remove through the admin socket reach the edge', async (tt) => {
  const echoPort = await echoServer(tt)
  const e = await testEdge(tt, {
    tcp: [
      parseTcpMapping(`127.0.0.1:0=${P1}:${echoPort}`),
      parseTcpMapping(`127.0.0.1:0=${P2}:${echoPort}`),
    ],
  })
  const dir = await enroll(tt, e, 'runner-p')
  const metrics = new PromMetrics()
  const agent = await testAgent(tt, {
    stateDir: dir,
    edges: [e.tunnel],
    projects: { [P1]: { host: '127.0.0.1', allowedPorts: [echoPort] } },
    health: { host: '127.0.0.1', port: 0 },
    metrics,
    renderMetrics: () => metrics.render(),
  })
  await until(() => agent.controls().length === 1, 'session up')
  const sock = agent.adminSocket!.path
  tt.equal(statSync(sock).mode & 0o777, 0o600, 'admin socket is 0600')

  const p2Port = e.edge.tcp[1]!.address.port
  const refused = net.connect(p2Port, '127.0.0.1')
  refused.on('error', () => {})
  await once(refused, 'close')
  tt.pass('before add: a stream for the unhosted project is refused')

  const add = await runHopgate([
    'agent',
    'project',
    'add',
    P2,
    '--host',
    '127.0.0.1',
    '--port',
    String(echoPort),
    '--port',
    '9000-9010',
    '--state-dir',
    dir,
    '--json',
  ])
  tt.equal(add.code, 0, `add exits 0 ${add.stderr}`)
  tt.same(JSON.parse(add.stdout).allowedPorts, [echoPort, [9000, 9010]], 'add answers the targets')
  await until(async () => (await e.edge.store.getRoute(P2))?.runner === 'runner-p', 'route claimed')
  tt.pass('the edge learned of the project and routed it to this runner')
  const client = await echoClient(p2Port)
  tt.equal(await client.roundTrip('hello P2'), 'hello P2', 'traffic reaches the new project')
  await client.end()

  // Independent commands run side by side: each CLI start is most of this test's time.
  const [list, text, bad] = await Promise.all([
    runHopgate(['agent', 'project', 'list', '--state-dir', dir, '--json']),
    runHopgate(['agent', 'project', 'list', '--socket', sock]),
    runHopgate(['agent', 'project', 'add', 'not-a-uuid', '--host', 'x', '--state-dir', dir]),
  ])
  tt.equal(list.code, 0)
  tt.same(
    (JSON.parse(list.stdout) as { projects: Array<{ project: string }> }).projects.map(
      (p) => p.project,
    ),
    [P1, P2],
    'list --json names both projects',
  )
  tt.match(
    text.stdout,
    new RegExp(`${P2}\\s+host=127\\.0\\.0\\.1\\s+ports=${echoPort},9000-9010`),
    'table line',
  )

  tt.equal(bad.code, 78, 'a bad project id is a configuration error')
  tt.match(bad.stderr, /HOPGATE_ERR_CONFIG_INVALID/, 'with its typed code')
  tt.equal(agent.registry.get(P2)?.allowedPorts.length, 2, 'the registry is unchanged')

  const rm = await runHopgate(['agent', 'project', 'remove', P2, '--state-dir', dir])
  tt.equal(rm.code, 0)
  tt.match(rm.stdout, /removed/)
  tt.notOk(agent.registry.has(P2), 'gone from the registry')
  const after = net.connect(p2Port, '127.0.0.1')
  after.on('error', () => {})
  await once(after, 'close')
  tt.pass('after remove: refused again (default deny)')
  await until(async () => (await e.edge.store.getRunner('runner-p'))?.projects === 1, 'count')
  tt.pass('the edge’s runner record counts one project again')

  // The health and metrics listener.
  const base = `http://127.0.0.1:${agent.health!.address.port}`
  tt.equal((await fetch(`${base}/healthz`)).status, 200, '/healthz')
  tt.equal((await fetch(`${base}/readyz`)).status, 200, '/readyz with a session up')
  const m = { body: await (await fetch(`${base}/metrics`)).text() }
  tt.equal(sampleOf(m, 'hopgate_agent_sessions'), 1, 'sessions gauge')
  tt.equal(sampleOf(m, 'hopgate_agent_projects'), 1, 'projects gauge')
  tt.ok(sampleOf(m, 'hopgate_agent_streams_total', { status: 'ok' }) >= 1, 'streams ok counted')
  tt.equal(
    sampleOf(m, 'hopgate_agent_streams_total', { status: 'unknown_project' }),
    2,
    'refused streams counted by status',
  )
  tt.ok(sampleOf(m, 'hopgate_agent_cert_expiry_timestamp_seconds') > Date.now() / 1000, 'expiry')
  await agent.connector!.stop()
  tt.equal((await fetch(`${base}/readyz`)).status, 503, '/readyz without a session')
})
