// Runtime project changes survive an agent restart: `project add|remove` through the real admin
// socket, the agent closed and started again on the same state dir and YAML projects, and the
// edge's raw TCP ingress shows what is served. Also: the file's mode and merge rule (runtime add
// over YAML, runtime remove hides a YAML project, a later add lifts it), a damaged file is a typed
// start error and stays as it was, and persistProjects: false writes nothing.
import t from 'tap'
import { existsSync, statSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { parseTcpMapping } from '../../edge/ingress/tcp.js'
import { startAgent } from '../../agent/agent.js'
import { callAdminSocket } from '../../agent/admin-socket.js'
import { projectStatePath } from '../../agent/project-state.js'
import type { ProjectTargetsInput } from '../../agent/registry.js'
import { echoServer } from '../helpers/echo.js'
import type { TapTest } from '../helpers/yamux-pair.js'
import { echoClient, enroll, report, testEdge, until, type TestEdge } from './_cluster.js'

const P1 = '0f8fad5b-d9cb-469f-a165-70867728950e'
const P2 = '7c9e6679-7425-40de-944b-e07fc1f90ae7'

/** True if a connection to `port` echoes; false if the edge closes it unanswered (refused). */
async function served(port: number): Promise<boolean> {
  const c = await echoClient(port)
  // A refusal is a close, or a reset if the ping was still unread when the edge let go.
  const answer = await Promise.race([
    c.roundTrip('ping').catch(() => undefined),
    c.closed.then(() => undefined),
  ])
  c.socket.destroy()
  return answer === 'ping'
}

async function cluster(tt: TapTest) {
  const echoPort = await echoServer(tt)
  const e = await testEdge(tt, {
    tcp: [
      parseTcpMapping(`127.0.0.1:0=${P1}:${echoPort}`),
      parseTcpMapping(`127.0.0.1:0=${P2}:${echoPort}`),
    ],
  })
  const dir = await enroll(tt, e, 'runner-pp')
  const yaml = { [P1]: { host: '127.0.0.1', allowedPorts: [echoPort] } }
  return {
    echoPort,
    e,
    dir,
    yaml,
    p1: e.edge.tcp[0]!.address.port,
    p2: e.edge.tcp[1]!.address.port,
  }
}

async function start(
  tt: TapTest,
  e: TestEdge,
  dir: string,
  yaml: Record<string, ProjectTargetsInput>,
  extra = {},
) {
  const agent = await startAgent({
    stateDir: dir,
    edges: [e.tunnel],
    slots: 1,
    report,
    projects: yaml,
    ...extra,
  })
  tt.teardown(() => agent.close())
  await until(() => agent.controls().length === 1, 'session up')
  return agent
}

t.test('add and remove through the admin socket survive a restart', async (tt) => {
  const { echoPort, e, dir, yaml, p1, p2 } = await cluster(tt)
  let agent = await start(tt, e, dir, yaml)
  const sock = agent.adminSocket!.path
  tt.notOk(existsSync(projectStatePath(dir)), 'no file before any runtime change')

  await callAdminSocket(sock, {
    op: 'add',
    project: P2,
    targets: { host: '127.0.0.1', allowedPorts: [echoPort, '9000-9010'] },
  })
  await callAdminSocket(sock, { op: 'remove', project: P1 })
  tt.equal(statSync(projectStatePath(dir)).mode & 0o777, 0o600, 'projects.json is 0600')
  tt.same(
    JSON.parse(await readFile(projectStatePath(dir), 'utf8')),
    {
      version: 1,
      added: { [P2]: { host: '127.0.0.1', allowedPorts: [echoPort, '9000-9010'] } },
      removed: [P1],
    },
    'the file holds the runtime add and the removal of the YAML project',
  )
  await until(async () => (await e.edge.store.getRoute(P2))?.runner === 'runner-pp', 'P2 routed')
  tt.ok(await served(p2), 'P2 served before the restart')

  await agent.close()
  agent = await start(tt, e, dir, yaml)
  tt.same(agent.registry.list(), [P2], 'after restart: P2 (runtime) in, P1 (YAML, removed) out')
  tt.same(agent.registry.get(P2)?.allowedPorts, [echoPort, [9000, 9010]], 'P2 targets as added')
  tt.ok(await served(p2), 'P2 served after the restart')
  tt.notOk(await served(p1), 'P1 refused after the restart (the removal persisted)')

  // A runtime add of the YAML project lifts its removal, and this too survives a restart.
  await callAdminSocket(agent.adminSocket!.path, {
    op: 'add',
    project: P1,
    targets: { host: '127.0.0.1', allowedPorts: [echoPort] },
  })
  await callAdminSocket(agent.adminSocket!.path, { op: 'remove', project: P2 })
  await agent.close()
  agent = await start(tt, e, dir, yaml)
  tt.same(agent.registry.list(), [P1], 'after the second restart: P1 back, P2 removed')
  await until(async () => (await e.edge.store.getRoute(P1))?.runner === 'runner-pp', 'P1 routed')
  tt.ok(await served(p1), 'P1 served again')
  tt.notOk(await served(p2), 'P2 refused (its removal persisted)')
})

t.test('a refused add changes neither the registry nor the file', async (tt) => {
  const { e, dir, yaml } = await cluster(tt)
  const agent = await start(tt, e, dir, yaml)
  await tt.rejects(
    callAdminSocket(agent.adminSocket!.path, {
      op: 'add',
      project: P2,
      targets: { host: '127.0.0.1', allowedPorts: [70000] },
    }),
    { code: 'HOPGATE_ERR_CONFIG_INVALID' },
  )
  tt.notOk(agent.registry.has(P2), 'not in the registry')
  tt.notOk(existsSync(projectStatePath(dir)), 'no file written')
})

t.test('a damaged file is a typed start error and is left as it was', async (tt) => {
  const { e, dir, yaml, echoPort } = await cluster(tt)
  // A first start creates <stateDir>/agent/ state; then each damaged variant is tried.
  const variants: Array<[string, string]> = [
    ['truncated JSON', '{"version":1,"added":{'],
    ['wrong shape', JSON.stringify({ version: 1, added: {}, removed: 'all' })],
    ['unknown version', JSON.stringify({ version: 2, added: {}, removed: [] })],
    [
      'targets the registry refuses',
      JSON.stringify({
        version: 1,
        added: { [P2]: { host: '127.0.0.1', allowedPorts: [0] } },
        removed: [],
      }),
    ],
    ['a bad project id', JSON.stringify({ version: 1, added: {}, removed: ['P1'] })],
  ]
  for (const [what, body] of variants) {
    await writeFile(projectStatePath(dir), body, { mode: 0o600 })
    await tt.rejects(
      startAgent({ stateDir: dir, edges: [e.tunnel], slots: 1, report, projects: yaml }),
      { code: 'HOPGATE_ERR_AGENT_PROJECTS_STATE_INVALID' },
      `${what}: refused with its code`,
    )
    tt.equal(await readFile(projectStatePath(dir), 'utf8'), body, `${what}: the file is untouched`)
  }
  // The operator's fix (here: a valid file) lets it start.
  await writeFile(
    projectStatePath(dir),
    JSON.stringify({
      version: 1,
      added: { [P2]: { host: '127.0.0.1', allowedPorts: [echoPort] } },
      removed: [],
    }),
  )
  const agent = await start(tt, e, dir, yaml)
  tt.same(agent.registry.list(), [P1, P2], 'starts once the file is valid')
})

t.test('persistProjects: false keeps changes in memory only', async (tt) => {
  const { echoPort, e, dir, yaml } = await cluster(tt)
  let agent = await start(tt, e, dir, yaml, { persistProjects: false })
  await callAdminSocket(agent.adminSocket!.path, {
    op: 'add',
    project: P2,
    targets: { host: '127.0.0.1', allowedPorts: [echoPort] },
  })
  tt.ok(agent.registry.has(P2), 'added in memory')
  tt.notOk(existsSync(projectStatePath(dir)), 'nothing written')
  await agent.close()
  agent = await start(tt, e, dir, yaml, { persistProjects: false })
  tt.same(agent.registry.list(), [P1], 'gone after the restart')
})
