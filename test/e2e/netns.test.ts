// A hidden runner (issue 3): the agent and its echo target run in a network namespace of their
// own, joined to the root namespace by one veth pair, behind a firewall that drops every inbound
// connection. Nothing in the root namespace can dial into it, yet a client in the root namespace
// reaches the echo through the edge's raw TCP ingress, over the agent's outbound (reverse) tunnel.
// Needs root and `ip netns` (and `nft` for the firewall); skipped without them unless CI=true.
// Addresses: a random 169.254.X.Y/30 pair that exists only on this veth pair, never routed on.
import t from 'tap'
import net from 'node:net'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { createHash, randomBytes, randomInt } from 'node:crypto'
import {
  enroll,
  initEdgeState,
  roundTripWithin,
  spawnProc,
  tempDir,
  type Line,
} from './fixtures/procs.js'

const run = promisify(execFile)
const P = 'a3bb189e-8bf9-4888-9912-ace4e6543002'
const RUNNER = 'runner-hidden'

async function sh(cmd: string, args: string[], input?: string): Promise<string> {
  if (input === undefined) return (await run(cmd, args, { timeout: 10_000 })).stdout
  return new Promise<string>((resolve, reject) => {
    const child = execFile(cmd, args, { timeout: 10_000 }, (err, stdout, stderr) =>
      err
        ? reject(new Error(`${cmd} ${args.join(' ')}: ${stderr || err.message}`))
        : resolve(stdout),
    )
    child.stdin!.end(input)
  })
}

async function capable(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'needs root for ip netns'
  try {
    await sh('ip', ['netns', 'list'])
  } catch (err) {
    return `ip netns unavailable: ${String(err)}`
  }
  try {
    await sh('nft', ['--version'])
  } catch {
    return 'nft (Debian package nftables) is not installed'
  }
  return undefined
}

/** Connects with a bound wait: 'connected', 'refused' (RST) or 'timeout' (dropped). */
function probe(host: string, port: number, ms = 1000): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port })
    const done = (what: string): void => {
      clearTimeout(timer)
      s.destroy()
      resolve(what)
    }
    const timer = setTimeout(() => done('timeout'), ms)
    s.once('connect', () => done('connected'))
    s.once('error', (e: NodeJS.ErrnoException) =>
      done(e.code === 'ECONNREFUSED' ? 'refused' : `error ${e.code}`),
    )
  })
}

const missing = await capable()
if (missing && process.env.CI === 'true') t.fail(`CI=true, so this must run, but ${missing}`)

const name = 'a hidden runner in a network namespace serves through the reverse tunnel'
t.test(name, { skip: missing ?? false }, async (tt) => {
  const tag = randomBytes(3).toString('hex')
  const ns = `hg-${tag}`
  const hostIf = `hgv${tag}`
  const nsIf = `hgp${tag}`
  const octet = randomInt(1, 255)
  const base = randomInt(0, 64) * 4
  const edgeIp = `169.254.${octet}.${base + 1}`
  const nsIp = `169.254.${octet}.${base + 2}`

  await sh('ip', ['netns', 'add', ns])
  tt.teardown(async () => {
    await sh('ip', ['netns', 'del', ns]).catch(() => {})
    await sh('ip', ['link', 'del', hostIf]).catch(() => {})
  })
  await sh('ip', ['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf])
  await sh('ip', ['link', 'set', nsIf, 'netns', ns])
  await sh('ip', ['addr', 'add', `${edgeIp}/30`, 'dev', hostIf])
  await sh('ip', ['link', 'set', hostIf, 'up'])
  await sh('ip', ['-n', ns, 'addr', 'add', `${nsIp}/30`, 'dev', nsIf])
  await sh('ip', ['-n', ns, 'link', 'set', nsIf, 'up'])
  await sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up'])

  // The echo listens on every address of the namespace, so only the firewall hides it.
  const echo = await spawnProc(tt, 'echo-proc', { host: '0.0.0.0', port: 0 }, { netns: ns })
  const echoPort = echo.ready.port as number
  tt.equal(
    await probe(nsIp, echoPort),
    'connected',
    'control: before the firewall the root namespace reaches the echo on the veth address',
  )
  await sh(
    'ip',
    ['netns', 'exec', ns, 'nft', '-f', '-'],
    `table inet hopgate_hidden {
      chain input {
        type filter hook input priority 0; policy drop;
        iif "lo" accept
        ct state established,related accept
      }
    }\n`,
  )

  const edgeDir = await tempDir(tt, 'hopgate-netns-edge-')
  const agentDir = await tempDir(tt, 'hopgate-netns-agent-')
  const { edgeCaFingerprint } = await initEdgeState(edgeDir)
  const edge = await spawnProc(tt, 'edge-proc', {
    stateDir: edgeDir,
    tunnelHost: edgeIp,
    tunnelPort: 0,
    tcp: [`127.0.0.1:0=${P}:${echoPort}`],
    heartbeatIntervalMs: 500,
  })
  const tunnelPort = (edge.ready.tunnel as { port: number }).port
  const ingress = (edge.ready.tcp as Array<{ port: number }>)[0]!.port
  await enroll({
    edgeDir,
    edgeCaFingerprint,
    host: edgeIp,
    port: tunnelPort,
    runnerId: RUNNER,
    agentDir,
  })

  const agent = await spawnProc(
    tt,
    'agent-proc',
    {
      stateDir: agentDir,
      edges: [`${edgeIp}:${tunnelPort}`],
      slots: 2,
      projects: { [P]: { host: '127.0.0.1', allowedPorts: [echoPort] } },
    },
    { netns: ns },
  )
  const session = await edge.waitFor(
    (l: Line) => l.event === 'session' && l.runnerId === RUNNER,
    'the hidden agent’s session',
    10_000,
  )
  tt.equal(session.runnerId, RUNNER, 'the agent in the namespace dialled out to the edge')

  const probes = await Promise.all(
    [echoPort, tunnelPort, 22, 80, 443, 7443].map(async (port) => [port, await probe(nsIp, port)]),
  )
  tt.notOk(
    probes.some(([, r]) => r === 'connected'),
    `nothing in the root namespace connects into the namespace: ${JSON.stringify(probes)}`,
  )

  const attempts = await roundTripWithin(ingress, 5000)
  tt.pass(`a root-namespace client reaches the hidden echo through the ingress (${attempts} try)`)
  const data = randomBytes(4 * 1024 * 1024)
  const got = await new Promise<Buffer>((resolve, reject) => {
    const s = net.connect(ingress, '127.0.0.1')
    const chunks: Buffer[] = []
    const timer = setTimeout(() => (s.destroy(), reject(new Error('4 MiB echo timed out'))), 15_000)
    s.on('error', (e) => (clearTimeout(timer), reject(e)))
    s.on('data', (c: Buffer) => chunks.push(c))
    s.on('end', () => (clearTimeout(timer), s.destroy(), resolve(Buffer.concat(chunks))))
    s.end(data)
  })
  tt.equal(
    createHash('sha256').update(got).digest('hex'),
    createHash('sha256').update(data).digest('hex'),
    '4 MiB through the reverse tunnel into the namespace, intact',
  )
  tt.notOk(agent.hasExited() || echo.hasExited(), 'agent and echo still running in the namespace')
})
