// The operator commands as real processes: `ca init`, `token create`, `edge`, `agent join`,
// `agent run`, then bytes through `--tcp` ingress, `runners`, `route get|set`, `runner revoke`,
// SIGTERM exits 0 for edge and agent, and the exit codes for bad flags (2) and bad config (78).
import t from 'tap'
import net from 'node:net'
import { execFileSync } from 'node:child_process'
import { once } from 'node:events'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runHopgate, startHopgate, type CliResult, type Daemon } from './helpers/cli.js'

const P = '0f8fad5b-d9cb-469f-a165-70867728950e'
const ENV = { HOPGATE_STATE_DIR: '', HOPGATE_ADMIN: '' }
const run = (args: string[]): Promise<CliResult> => runHopgate(args, { env: ENV })

async function json(args: string[]): Promise<any> {
  const r = await run(args)
  if (r.code !== 0) throw new Error(`hopgate ${args.join(' ')} exited ${r.code}: ${r.stderr}`)
  return JSON.parse(r.stdout)
}

/** Starts a long-running command and resolves once it printed its ready line. */
const daemon = (args: string[]): Promise<Daemon> => startHopgate(args, { env: ENV })

function psOf(pid: number | undefined): string {
  try {
    return execFileSync('ps', ['-o', 'stat=,pcpu=,time=', '-p', String(pid)])
      .toString()
      .trim()
  } catch {
    return 'gone'
  }
}

/** SIGTERM, then the exit code; a process still up after 8 s is a failure, not a hang. */
async function stop(d: Daemon): Promise<number | null> {
  if (d.child.exitCode !== null)
    throw new Error(`exited ${d.child.exitCode} before SIGTERM: ${d.stderr().slice(-3000)}`)
  const exited = once(d.child, 'exit') as Promise<[number | null]>
  d.child.kill('SIGTERM')
  const timer = new Promise<never>((_, reject) =>
    setTimeout(
      () =>
        reject(
          new Error(`no exit 8 s after SIGTERM (${psOf(d.child.pid)}): ${d.stderr().slice(-2000)}`),
        ),
      8000,
    ).unref(),
  )
  return (await Promise.race([exited, timer]))[0]
}

async function until(cond: () => Promise<boolean>, what: string, ms = 10_000) {
  const end = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`not reached in ${ms} ms: ${what}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

async function echoThrough(port: number, payload: Buffer): Promise<Buffer> {
  const sock = net.connect(port, '127.0.0.1')
  const chunks: Buffer[] = []
  sock.on('data', (c: Buffer) => chunks.push(c))
  sock.end(payload)
  await once(sock, 'end')
  sock.destroy()
  return Buffer.concat(chunks)
}

t.test('ca, token, edge, agent, tcp ingress, runners, route, revoke', async (tt) => {
  const dir = await mkdtemp(join(tmpdir(), 'hopgate-cli-'))
  tt.teardown(() => rm(dir, { recursive: true, force: true }))
  const edgeDir = join(dir, 'edge')
  const agentDir = join(dir, 'agent')
  const echo = net.createServer(
    { allowHalfOpen: true },
    (s) => (s.on('error', () => {}), s.pipe(s)),
  )
  echo.listen(0, '127.0.0.1')
  await once(echo, 'listening')
  tt.teardown(() => new Promise<void>((r) => echo.close(() => r())))
  const echoPort = (echo.address() as net.AddressInfo).port

  const ca = await json(['ca', 'init', '--state-dir', edgeDir, '--edge-id', 'edge-1', '--json'])
  tt.equal(ca.edgeId, 'edge-1', 'ca init')
  const tok = await json([
    'token',
    'create',
    '--runner',
    'runner-a',
    '--ttl',
    '10m',
    '--state-dir',
    edgeDir,
    '--json',
  ])
  tt.match(tok, { runnerId: 'runner-a', token: /^hg1\./ }, 'token create --json')
  tt.ok(
    Math.abs(Date.parse(tok.expiresAt) - Date.now() - 600_000) < 10_000,
    'expiresAt is ttl away',
  )

  const edge = await daemon([
    'edge',
    '--json',
    '--state-dir',
    edgeDir,
    '--tunnel-listen',
    '127.0.0.1:0',
    '--admin-listen',
    '127.0.0.1:0',
    '--http',
    '127.0.0.1:0',
    '--tcp',
    `127.0.0.1:0=${P}:${echoPort}`,
    '--heartbeat-interval-ms',
    '200',
  ])
  tt.match(edge.ready, { event: 'ready', tunnel: /^127\.0\.0\.1:[1-9]\d*$/, admin: /:[1-9]\d*$/ })
  tt.equal(edge.ready.tcp.length, 1, 'one tcp ingress')
  const admin = edge.ready.admin as string
  const tcpPort = Number((edge.ready.tcp[0] as string).split(':')[1])

  const joined = await json([
    'agent',
    'join',
    '--edge',
    edge.ready.tunnel,
    '--token',
    tok.token,
    '--state-dir',
    agentDir,
    '--json',
  ])
  tt.equal(joined.runnerId, 'runner-a', 'agent join')
  const reused = await run([
    'agent',
    'join',
    '--edge',
    edge.ready.tunnel,
    '--token',
    tok.token,
    '--state-dir',
    agentDir,
  ])
  tt.equal(reused.code, 1, 'a used token fails with exit 1')
  tt.match(reused.stderr, /HOPGATE_ERR_JOIN_TOKEN_USED/)

  const config = join(dir, 'agent.yaml')
  await writeFile(
    config,
    `version: 1\nslots: 2\nprojects:\n  ${P}:\n    host: 127.0.0.1\n    allowedPorts: [${echoPort}]\n`,
  )
  const agent = await daemon([
    'agent',
    'run',
    '--json',
    '--config',
    config,
    '--edge',
    edge.ready.tunnel,
    '--state-dir',
    agentDir,
  ])
  tt.match(agent.ready, { event: 'ready', runnerId: 'runner-a', projects: [P] })

  const runnersArgs = ['runners', '--admin', admin, '--json']
  await until(async () => (await json(runnersArgs)).runners[0]?.sessions === 2, 'two sessions')
  tt.match((await json(runnersArgs)).runners[0], {
    runnerId: 'runner-a',
    healthy: true,
    sessions: 2,
  })
  const table = await run(['runners', '--admin', admin])
  tt.match(table.stdout, /RUNNER\s+HEALTHY[\s\S]*runner-a\s+yes\s+2/, 'runners table')

  const payload = randomBytes(256 * 1024)
  tt.ok((await echoThrough(tcpPort, payload)).equals(payload), 'bytes through --tcp ingress')

  const route = await json(['route', 'get', P, '--admin', admin, '--json'])
  tt.match(route.route, { project: P, runner: 'runner-a', state: 'active' }, 'route get')
  const set = await json([
    'route',
    'set',
    P,
    '--runner',
    'runner-a',
    '--state',
    'active',
    '--admin',
    admin,
    '--json',
  ])
  tt.equal(set.route.epoch, route.route.epoch + 1, 'route set bumps the epoch')
  const stale = await run([
    'route',
    'set',
    P,
    '--runner',
    'runner-a',
    '--expected-epoch',
    '99',
    '--admin',
    admin,
  ])
  tt.equal(stale.code, 1, 'a stale epoch fails')
  tt.match(stale.stderr, /HOPGATE_ERR_ROUTE_CONFLICT/)
  tt.equal(
    (await run(['route', 'get', '1b4e28ba-2fa1-11d2-883f-0016d3cca427', '--admin', admin])).code,
    1,
    'no route: exit 1',
  )

  const revoked = await json(['runner', 'revoke', 'runner-a', '--admin', admin, '--json'])
  tt.match(
    revoked,
    { runnerId: 'runner-a', sessionsClosed: 2 },
    'runner revoke closes its sessions',
  )
  tt.match((await json(runnersArgs)).runners[0], { sessions: 0, revoked: true })

  tt.equal(await stop(agent), 0, 'agent: SIGTERM exits 0')
  tt.equal(await stop(edge), 0, 'edge: SIGTERM exits 0')
})

t.test('exit codes: bad flags 2, bad config 78, unreachable admin 1', async (tt) => {
  const dir = await mkdtemp(join(tmpdir(), 'hopgate-cli-bad-'))
  tt.teardown(() => rm(dir, { recursive: true, force: true }))
  tt.equal(
    (await run(['token', 'create', '--runner', 'r', '--state-dir', dir, '--ttl', '15'])).code,
    2,
    'ttl without unit',
  )
  tt.equal((await run(['edge', '--no-such-flag'])).code, 2, 'unknown flag')
  tt.equal(
    (await run(['route', 'set', P, '--runner', 'r', '--state', 'gone'])).code,
    2,
    'bad state',
  )
  tt.equal((await run(['route', 'get', 'not-a-uuid'])).code, 2, 'bad project id')
  tt.equal(
    (await run(['edge', '--state-dir', dir, '--tunnel-listen', 'nope'])).code,
    78,
    'bad listen address',
  )
  tt.equal(
    (await run(['edge', '--state-dir', dir, '--heartbeat-interval-ms', 'soon'])).code,
    78,
    'not a number',
  )
  const bad = join(dir, 'bad.yaml')
  await writeFile(bad, `version: 1\nprojects:\n  ${P}:\n    allowedPorts: [99999]\n`)
  const r = await run([
    'agent',
    'run',
    '--config',
    bad,
    '--edge',
    '127.0.0.1:1',
    '--state-dir',
    dir,
  ])
  tt.equal(r.code, 78, 'bad project config')
  tt.match(r.stderr, /projects\./)
  tt.equal(
    (await run(['edge', '--config', join(dir, 'missing.yaml')])).code,
    78,
    'missing config file',
  )
  const down = await run(['runners', '--admin', '127.0.0.1:1'])
  tt.equal(down.code, 1, 'unreachable admin')
  tt.match(down.stderr, /HOPGATE_ERR_ADMIN_UNREACHABLE/)
  for (const cmd of [
    ['ca', 'init'],
    ['token', 'create'],
    ['edge'],
    ['agent', 'join'],
    ['agent', 'run'],
    ['runners'],
    ['route', 'get'],
    ['route', 'set'],
    ['runner', 'revoke'],
  ]) {
    const h = await run([...cmd, '--help'])
    tt.equal(h.code, 0, `${cmd.join(' ')} --help`)
  }
})
