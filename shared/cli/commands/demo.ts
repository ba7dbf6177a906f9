// `hopgate demo` (also `npm start`): a real edge and agent on loopback, in one process, with the
// embedded route store and a sample project (TCP echo; HTTP page + WebSocket echo) reachable
// through raw TCP ingress and the HTTP ingress (a demo account with a token) on every edge. The assembly lives in shared/demo/; this file is the
// command line: options, the stdout contract (banner, or the `--json` ready line), and a clean
// stop on SIGINT/SIGTERM (agents, edges, services closed; a temp state dir removed; exit 0).
import { firstSignal } from './common.js'
import { randomUUID } from 'node:crypto'
import { resolve } from 'node:path'
import { InvalidArgumentError, Option, type Command } from 'commander'
import { createLogger } from '../../log.js'
import { startDemoCluster, type DemoCluster } from '../../demo/cluster.js'
import { parseStoreChoice } from '../../../edge/stores.js'
import { isHopgateError } from '../../errors.js'

/** The sample project's id unless `--project` asks for another (or a random one). */
export const DEMO_PROJECT = '5ca1ab1e-d3e0-4000-8000-00000000de30'
const PROJECT_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

function parsePort(value: string): number {
  if (!/^\d{1,5}$/.test(value) || Number(value) > 65535) {
    throw new InvalidArgumentError('must be an integer from 0 to 65535 (0 picks a free port)')
  }
  return Number(value)
}

function parseCount(value: string): number {
  if (!/^\d{1,2}$/.test(value) || Number(value) < 1 || Number(value) > 16) {
    throw new InvalidArgumentError('must be an integer from 1 to 16')
  }
  return Number(value)
}

function parseStore(value: string): string {
  try {
    parseStoreChoice(value)
  } catch (err) {
    if (isHopgateError(err)) throw new InvalidArgumentError(err.message)
    throw err
  }
  return value
}

function parseProject(value: string): string {
  if (value === 'random') return randomUUID()
  if (!PROJECT_RE.test(value)) {
    throw new InvalidArgumentError('must be a lowercase UUID (8-4-4-4-12 hex) or "random"')
  }
  return value
}

// The stdout contract: the `--json` ready line (issue 3 item 8: its field set and order are what
// scripts and later issues parse) or, for people, the banner with the commands to try.

export interface ReadyLine {
  event: 'ready'
  project: string
  runner: string
  stateDir: string
  edges: Array<{
    tunnel: string
    admin: string | null
    tcp: string
    httpTcp: string
    /** HTTP and WebSocket ingress (issue 4). */
    http: string
    /** SSH ingress (issue 5). */
    ssh: string
  }>
  services: { tcpEcho: number; http: number }
  /** A user token of the demo account, a collaborator of the project (issue 4). */
  token: string
  /** The demo account's private key, for `ssh -i`. */
  sshKey: string
  /** With `--ssh-user-ca`: the key's certificate, `<sshKey>-cert.pub` (the only credential then). */
  sshCert?: string
  /** Only with `--store redis://...`: the key prefix of this run (removed on exit). */
  store?: { kind: 'redis'; keyPrefix: string }
}

/** The one `--json` line, without its newline. */
export function readyLine(c: DemoCluster): string {
  const ready: ReadyLine = {
    event: 'ready',
    project: c.project,
    runner: c.runner,
    stateDir: c.stateDir,
    edges: c.edges.map((e) => ({
      tunnel: e.tunnel,
      admin: e.admin,
      tcp: e.tcp,
      httpTcp: e.httpTcp,
      http: e.http,
      ssh: e.ssh,
    })),
    services: { tcpEcho: c.services.tcpEchoPort, http: c.services.httpPort },
    token: c.token,
    sshKey: c.sshKey,
    ...(c.sshCert ? { sshCert: c.sshCert } : {}),
    ...(c.store && { store: c.store }),
  }
  return JSON.stringify(ready)
}

const split = (hp: string): { host: string; port: string } => {
  const i = hp.lastIndexOf(':')
  return { host: hp.slice(0, i).replace(/^\[|\]$/g, ''), port: hp.slice(i + 1) }
}

/** The human banner: what runs where, and the exact commands to try. */
export function banner(c: DemoCluster): string {
  const first = c.edges[0]!
  const tcp = split(first.tcp)
  const web = first.httpTcp
  const wsUrl = `ws://${web}/ws`
  const lines = [
    'hopgate demo: edge + agent over yamux/mutual TLS 1.3, on loopback, ' +
      (c.store
        ? `shared Redis store (keys under ${c.store.keyPrefix}, removed on exit).`
        : 'embedded route store.'),
    `  project     ${c.project}  (hosted by runner ${c.runner})`,
    `  runners     ${c.runners.join(', ')}  ` +
      (c.store && c.edges.length > 2
        ? '(each: 2 reverse sessions to each of two edges; the others forward)'
        : '(each: 2 reverse sessions to every edge)'),
    `  state dir   ${c.stateDir}${c.createdStateDir ? '  (removed on exit)' : ''}`,
    `  services    tcp echo 127.0.0.1:${c.services.tcpEchoPort}, http+ws 127.0.0.1:${c.services.httpPort}` +
      '  (dialed only by the agent)',
  ]
  for (const e of c.edges) {
    lines.push(
      `  ${e.id.padEnd(10)}  tunnel ${e.tunnel}  admin ${e.admin ?? '(not yet)'}  http ${e.http}`,
      `              tcp->echo ${e.tcp}  tcp->http ${e.httpTcp}  ssh ${e.ssh}`,
    )
  }
  // HTTP ingress (issue 4): the project's web server under /{project}/server/{port}/.
  const site = `http://${first.http}/${c.project}/server/${c.services.httpPort}/`
  lines.push(
    `  account     ${c.account}  (a collaborator of the project; its token is below, valid 12 h)`,
    '',
    'Through the HTTP ingress (auth: token, collaborator ACL; one URL scheme for every project):',
    `  export HOPGATE_TOKEN=${c.token}`,
    `  curl -H "Authorization: Bearer $HOPGATE_TOKEN" ${site}`,
    `  curl -H "Accept: application/json" ${site}     401 without the token`,
    `  browser: ${site}?hopgate_token=${c.token}`,
    '      (once: the edge turns it into an HttpOnly cookie and drops it from the URL;',
    `       the page's WebSocket echo is ws://${first.http}/${c.project}/server/${c.services.httpPort}/ws)`,
  )
  lines.push(
    '',
    'Try (each goes through an edge, a yamux stream over mutual TLS, and the agent):',
    `  nc ${tcp.host} ${tcp.port}            type a line: it comes back`,
    `  curl http://${web}/       the page names the project and the runner`,
    `  ssh -i ${c.sshKey} -p ${split(first.ssh).port} -o UserKnownHostsFile=${c.stateDir}/known_hosts ${c.project}@${split(first.ssh).host}`,
    `      a shell in the project (its sshd: ${c.sshd === 'openssh' ? 'OpenSSH' : 'ssh2 fallback'}), through the edge's SSH ingress`,
    ...(c.sshCert
      ? [
          `      logs in with the certificate ${c.sshCert} (ssh finds it beside the key;`,
          `       signed by the demo user CA ${c.stateDir}/ssh_user_ca, principal ${c.account})`,
        ]
      : []),
    `  node --experimental-websocket -e "const w=new WebSocket('${wsUrl}');` +
      `w.onopen=()=>w.send('hi');w.onmessage=(m)=>{console.log(m.data);w.close()}"`,
    '      (WebSocket echo; Node 22+ does not need the flag)',
  )
  if (first.admin) lines.push(`  curl http://${first.admin}/healthz   the edge's admin API`)
  lines.push(
    '  npm run bench:yamux          the yamux layer vs raw TLS and TCP',
    '  hopgate bench                the full benchmark vs TCP, a Node proxy, TLS relay, ssh -R',
    '',
    '',
    'Ctrl-C stops it.',
    '',
  )
  return lines.join('\n')
}

interface DemoCliOptions {
  json?: boolean
  port: number
  httpPort: number
  tunnelPort: number
  adminPort: number
  webPort: number
  sshPort: number
  edges: number
  agents: number
  project?: string | true
  stateDir?: string
  sshUserCa?: boolean
  store?: string
}

const portOption = (flags: string, what: string, env: string): Option =>
  new Option(flags, `${what} on the first edge (0 picks a free port; other edges always do)`)
    .env(env)
    .argParser(parsePort)
    .default(0)

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description(
      'run an edge and an agent on loopback with a sample project (TCP echo, HTTP, WebSocket)',
    )
    .option('--json', 'print one JSON line on stdout when ready instead of the banner')
    .addOption(portOption('--port <n>', 'raw TCP ingress to the echo service', 'HOPGATE_DEMO_PORT'))
    .addOption(
      portOption(
        '--http-port <n>',
        'raw TCP ingress to the HTTP service',
        'HOPGATE_DEMO_HTTP_PORT',
      ),
    )
    .addOption(portOption('--web-port <n>', 'HTTP and WebSocket ingress', 'HOPGATE_DEMO_WEB_PORT'))
    .addOption(portOption('--tunnel-port <n>', 'tunnel listener', 'HOPGATE_DEMO_TUNNEL_PORT'))
    .addOption(portOption('--ssh-port <n>', 'SSH ingress', 'HOPGATE_DEMO_SSH_PORT'))
    .addOption(
      portOption(
        '--admin-port <n>',
        'admin listener (when the edge has one)',
        'HOPGATE_DEMO_ADMIN_PORT',
      ),
    )
    .addOption(
      new Option(
        '--edges <n>',
        'how many edges (all agents connect to all; with --store, two each)',
      )
        .argParser(parseCount)
        .default(1),
    )
    .addOption(
      new Option('--agents <n>', 'how many agents (the first hosts the project)')
        .argParser(parseCount)
        .default(1),
    )
    .addOption(
      new Option(
        '--project [uuid]',
        `the sample project's id; alone (or "random") a random one (default ${DEMO_PROJECT})`,
      ).argParser(parseProject),
    )
    .option(
      '--ssh-user-ca',
      'create an SSH user CA in the state dir that the edges trust, and log the demo account in ' +
        'with a certificate (printed as sshCert) instead of a registered key',
    )
    .addOption(
      new Option(
        '--store <url>',
        'redis://host:port[/db]: the edges share it (under a key prefix of this run, removed on ' +
          'exit) and forward to each other; agents connect to two edges each',
      )
        .env('HOPGATE_DEMO_STORE')
        .argParser(parseStore),
    )
    .addOption(
      new Option(
        '--state-dir <dir>',
        'state directory, kept on exit (default: a temp dir, removed)',
      ).env('HOPGATE_DEMO_STATE_DIR'),
    )
    .action(async (opts: DemoCliOptions) => {
      const log = createLogger({ bindings: { cmd: 'demo' } })
      const signals = firstSignal(log)
      try {
        const project =
          opts.project === undefined
            ? DEMO_PROJECT
            : opts.project === true
              ? randomUUID()
              : opts.project
        const cluster = await startDemoCluster({
          project,
          edges: opts.edges,
          agents: opts.agents,
          slotsPerEdge: 2,
          tunnelPort: opts.tunnelPort,
          tcpPort: opts.port,
          httpTcpPort: opts.httpPort,
          adminPort: opts.adminPort,
          webPort: opts.webPort,
          sshPort: opts.sshPort,
          ...(opts.sshUserCa ? { sshUserCa: true } : {}),
          ...(opts.stateDir === undefined ? {} : { stateDir: resolve(opts.stateDir) }),
          ...(opts.store === undefined ? {} : { store: opts.store }),
          log,
        })
        log.info(
          { project, runner: cluster.runner, stateDir: cluster.stateDir, edges: cluster.edges },
          'demo ready',
        )
        process.stdout.write(opts.json ? readyLine(cluster) + '\n' : banner(cluster))
        const sig = await signals.signal
        log.info({ signal: sig }, 'stopping')
        await cluster.close()
        log.info('stopped')
      } finally {
        signals.dispose()
      }
    })
}
