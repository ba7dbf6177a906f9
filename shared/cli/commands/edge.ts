// `hopgate edge`: runs one edge (edge/edge.ts) until SIGINT/SIGTERM. Its options are one zod
// schema, so each is a YAML key, a HOPGATE_* env var and a flag (shared/config.ts); `--tcp` is
// repeatable. Logs are pino JSON on stderr; `--json` prints one ready line on stdout with the
// real addresses (port 0 picks free ports, which tests rely on). With `cluster.registry` set
// (a redis:// URL) the edge joins its peers (edge/cluster/); SIGTERM drains it gracefully
// (edge/drain.ts), SIGINT closes at once.
import type { Command } from 'commander'
import { z } from 'zod'
import { readFile } from 'node:fs/promises'
import { startEdge, type EdgeOptions } from '../../../edge/edge.js'
import { assertBasePath } from '../../../edge/http/target.js'
import { RedisEdgeRegistry } from '../../../edge/cluster/redis-registry.js'
import { UPSTREAM_GUARD_DEFAULTS } from '../../../edge/ssh/upstream.js'
import { systemClock } from '../../clock.js'
import { HopgateError } from '../../errors.js'
import { parseTcpMapping } from '../../../edge/ingress/tcp.js'
import { parseStoreChoice } from '../../../edge/stores.js'
import { createLogger } from '../../log.js'
import { PromMetrics } from '../../metrics-prom.js'
import {
  addConfigOptions,
  configFromOptions,
  firstSignal,
  formatHostPort,
  parseHostPort,
  printJson,
} from './common.js'

export const edgeConfigSchema = z
  .object({
    stateDir: z.string().min(1).default('/var/lib/hopgate/edge').describe('edge state directory'),
    store: z
      .string()
      .default('embedded')
      .describe('shared state: embedded (state dir, one edge) or redis://host:port[/db]'),
    storeKeyPrefix: z
      .string()
      .regex(/^[A-Za-z0-9:._-]{1,64}$/)
      .default('hopgate:')
      .describe('Redis key prefix, the same on every edge of one cluster'),
    tunnel: z
      .object({
        listen: z.string().default('0.0.0.0:7443').describe('agent tunnel listener host:port'),
      })
      .strict()
      .default({ listen: '0.0.0.0:7443' }),
    admin: z
      .object({
        listen: z.string().default('127.0.0.1:9090').describe('admin HTTP API host:port'),
      })
      .strict()
      .default({ listen: '127.0.0.1:9090' }),
    // HTTP and WebSocket ingress (issue 4). `--http off` runs the edge without it.
    http: z
      .object({
        listen: z.string().default('0.0.0.0:8080').describe('HTTP ingress host:port, or "off"'),
        basePath: z.string().default('').describe('enforced URL prefix, e.g. /hub'),
        tlsCert: z.string().optional().describe('PEM certificate file: serve HTTPS'),
        tlsKey: z.string().optional().describe('PEM key file for --http-tls-cert'),
      })
      .strict()
      .default({ listen: '0.0.0.0:8080', basePath: '' }),
    tcp: z
      .array(z.string())
      .default([])
      .describe('raw TCP ingress <listen host:port>=<project>:<port>'),
    // SSH ingress (issue 5): off unless ssh.listen (flag --ssh) is set.
    ssh: z
      .object({
        listen: z.string().optional().describe('SSH ingress host:port, e.g. 0.0.0.0:2222'),
        userCaFiles: z
          .array(z.string())
          .default([])
          .describe('files of trusted user-CA public keys (authorized_keys lines)'),
        upstreamUser: z
          .string()
          .default('{project}')
          .describe("login on the project's sshd; {project} = UUID without dashes"),
        allowRemoteForward: z.boolean().default(false).describe('allow ssh -R'),
        loginGraceMs: z.number().int().min(1000).max(600_000).default(20_000),
        upstreamGuards: z
          .object({
            stalledWindowMs: z
              .number()
              .int()
              .min(500)
              .max(60_000)
              .default(UPSTREAM_GUARD_DEFAULTS.stalledWindowMs)
              .describe('ms a new channel window may stay 0 before the upstream is cut off'),
            maxForwardedOpensPerSecond: z
              .number()
              .int()
              .min(1)
              .max(10_000)
              .default(UPSTREAM_GUARD_DEFAULTS.maxForwardedOpensPerSecond)
              .describe('forwarded (ssh -R) connections per second the upstream may open'),
            maxUnsolicitedPerSecond: z
              .number()
              .int()
              .min(1)
              .max(10_000)
              .default(UPSTREAM_GUARD_DEFAULTS.maxUnsolicitedPerSecond)
              .describe('unrequested channel opens plus global requests per second'),
            maxChannelRequestsPerSecond: z
              .number()
              .int()
              .min(1)
              .max(10_000)
              .default(UPSTREAM_GUARD_DEFAULTS.maxChannelRequestsPerSecond)
              .describe("channel requests per second (a channel's first exit report is free)"),
            requestReplyTimeoutMs: z
              .number()
              .int()
              .min(1000)
              .max(600_000)
              .default(UPSTREAM_GUARD_DEFAULTS.requestReplyTimeoutMs)
              .describe('ms the upstream has to answer a channel open and its session requests'),
          })
          .strict()
          .default({ ...UPSTREAM_GUARD_DEFAULTS }),
      })
      .strict()
      .default({
        userCaFiles: [],
        upstreamUser: '{project}',
        allowRemoteForward: false,
        loginGraceMs: 20_000,
        upstreamGuards: { ...UPSTREAM_GUARD_DEFAULTS },
      }),
    heartbeatIntervalMs: z.number().int().min(50).max(600_000).default(5000),
    leaseTtlMs: z.number().int().min(100).max(3_600_000).optional(),
    cluster: z
      .object({
        registry: z
          .string()
          .default('')
          .describe('edge registry, redis://host:port/db (empty: a single edge, no peers)'),
        peerListen: z
          .string()
          .default('0.0.0.0:7445')
          .describe('edge-to-edge peer link listener host:port'),
        tunnelAdvertise: z
          .string()
          .default('')
          .describe('tunnel host:port agents dial, as registered (default: tunnel.listen)'),
        peerAdvertise: z
          .string()
          .default('')
          .describe('peer host:port other edges dial, as registered (default: peerListen)'),
        discoveryListen: z
          .string()
          .default('')
          .describe('agent discovery endpoint host:port, GET /v1/edges (empty: off)'),
        leaseTtlMs: z.number().int().min(500).max(600_000).default(15_000),
        refreshIntervalMs: z.number().int().min(50).max(60_000).default(1000),
      })
      .strict()
      .default({
        registry: '',
        peerListen: '0.0.0.0:7445',
        tunnelAdvertise: '',
        peerAdvertise: '',
        discoveryListen: '',
        leaseTtlMs: 15_000,
        refreshIntervalMs: 1000,
      }),
    drain: z
      .object({
        gracePeriodMs: z
          .number()
          .int()
          .min(0)
          .max(3_600_000)
          .default(30_000)
          .describe('SIGTERM: in-flight streams get this long before the edge closes'),
        lameDuckMs: z
          .number()
          .int()
          .min(0)
          .max(600_000)
          .default(2000)
          .describe('SIGTERM: user ingress keeps accepting this long after /readyz turns 503'),
      })
      .strict()
      .default({ gracePeriodMs: 30_000, lameDuckMs: 2000 }),
  })
  .strict()

/** `--ssh host:port` rather than the derived `--ssh-listen`. */
const SSH_FLAGS = { '--ssh-listen': '--ssh' }

export type EdgeConfig = z.output<typeof edgeConfigSchema>

export function registerEdge(program: Command): void {
  const cmd = program
    .command('edge')
    .description(
      'run an edge: tunnel listener, HTTP and WebSocket ingress, raw TCP ingress, admin API',
    )
    .option('--json', 'print one JSON ready line on stdout')
  const rename = { '--http-listen': '--http', ...SSH_FLAGS }
  addConfigOptions(cmd, edgeConfigSchema, rename).action(async (opts: Record<string, unknown>) => {
    const config = configFromOptions(edgeConfigSchema, opts, rename)
    // Every address is checked before anything listens, so a typo exits 78 with nothing opened.
    const tunnel = parseHostPort(config.tunnel.listen, 'tunnel.listen', true)
    const admin = parseHostPort(config.admin.listen, 'admin.listen', true)
    const tcp = config.tcp.map(parseTcpMapping)
    const http = await httpOption(config.http)
    parseStoreChoice(config.store)
    const c = config.cluster
    const peer = c.registry ? parseHostPort(c.peerListen, 'cluster.peerListen', true) : undefined
    const discovery = c.discoveryListen
      ? parseHostPort(c.discoveryListen, 'cluster.discoveryListen', true)
      : undefined
    for (const [v, what] of [
      [c.tunnelAdvertise, 'cluster.tunnelAdvertise'],
      [c.peerAdvertise, 'cluster.peerAdvertise'],
    ] as const) {
      if (v) parseHostPort(v, what)
    }
    if (c.registry && !/^rediss?:\/\//.test(c.registry)) {
      throw new HopgateError('HOPGATE_ERR_CONFIG_INVALID', 'cluster.registry wants redis://...')
    }
    if (discovery && !c.registry) {
      throw new HopgateError('HOPGATE_ERR_CONFIG_INVALID', 'discovery needs cluster.registry')
    }
    const registry = c.registry
      ? // The registry lives under the same prefix as the store, so clusters sharing one Redis
        // under different prefixes do not see each other's edges.
        new RedisEdgeRegistry({
          redis: c.registry,
          clock: systemClock,
          prefix: config.storeKeyPrefix,
        })
      : undefined
    const ssh = config.ssh.listen ? parseHostPort(config.ssh.listen, 'ssh.listen', true) : undefined
    const userCaKeys: string[] = []
    for (const file of config.ssh.userCaFiles) {
      const text = await readFile(file, 'utf8').catch((err: unknown) => {
        throw new HopgateError('HOPGATE_ERR_CONFIG_INVALID', `ssh.userCaFiles: ${file}`, {
          cause: err,
        })
      })
      userCaKeys.push(...text.split('\n').filter((l) => l.trim() && !l.trim().startsWith('#')))
    }
    const log = createLogger({ bindings: { cmd: 'edge' } })
    const signals = firstSignal(log)
    const metrics = new PromMetrics({ defaultMetrics: true })
    try {
      const edge = await startEdge({
        metrics,
        renderMetrics: () => metrics.render(),
        stateDir: config.stateDir,
        store: config.store,
        storeKeyPrefix: config.storeKeyPrefix,
        tunnelHost: tunnel.host,
        tunnelPort: tunnel.port,
        adminHost: admin.host,
        adminPort: admin.port,
        tcp,
        ...(http ? { http } : {}),
        heartbeatIntervalMs: config.heartbeatIntervalMs,
        ...(ssh
          ? {
              ssh: {
                host: ssh.host,
                port: ssh.port,
                userCaKeys,
                upstreamUser: config.ssh.upstreamUser,
                allowRemoteForward: config.ssh.allowRemoteForward,
                limits: { loginGraceMs: config.ssh.loginGraceMs },
                upstreamGuards: config.ssh.upstreamGuards,
              },
            }
          : {}),
        ...(config.leaseTtlMs !== undefined ? { leaseTtlMs: config.leaseTtlMs } : {}),
        ...(registry &&
          peer && {
            cluster: {
              registry,
              peerHost: peer.host,
              peerPort: peer.port,
              ...(c.tunnelAdvertise && { tunnelAdvertise: c.tunnelAdvertise }),
              ...(c.peerAdvertise && { peerAdvertise: c.peerAdvertise }),
              leaseTtlMs: c.leaseTtlMs,
              refreshIntervalMs: c.refreshIntervalMs,
              ...(discovery && { discoveryHost: discovery.host, discoveryPort: discovery.port }),
            },
          }),
        drain: {
          gracePeriodMs: config.drain.gracePeriodMs,
          lameDuckMs: config.drain.lameDuckMs,
        },
        onEvent: (event, detail) => {
          const quiet = event === 'session' || event === 'runner-revoked' || event === 'ssh-login'
          if (quiet) log.info({ event, ...detail }, event)
          else log.warn({ event, ...detail }, event)
        },
      })
      const ready = {
        event: 'ready',
        edgeId: edge.edgeId,
        tunnel: formatHostPort(edge.tunnel.address),
        admin: edge.admin ? formatHostPort(edge.admin.address) : null,
        tcp: edge.tcp.map((t) => formatHostPort(t.address)),
        http: edge.http ? formatHostPort(edge.http.address) : null,
        store: edge.stores.choice.kind,
        peer: edge.cluster ? formatHostPort(edge.cluster.peer.address) : null,
        discovery: edge.cluster?.discovery ? formatHostPort(edge.cluster.discovery.address) : null,
        ssh: edge.ssh ? formatHostPort(edge.ssh.address) : null,
      }
      log.info(ready, 'edge ready')
      if (opts.json) printJson(ready)
      const sig = await signals.signal
      if (sig === 'SIGTERM') {
        log.info({ signal: sig }, 'draining')
        const report = await edge.drain()
        log.info({ event: 'drained', ...report }, 'drained')
      } else {
        log.info({ signal: sig }, 'stopping')
        await edge.close()
      }
      log.info('stopped')
    } finally {
      await registry?.close()
      signals.dispose()
    }
  })
}

async function httpOption(c: EdgeConfig['http']): Promise<EdgeOptions['http']> {
  if (c.listen === 'off') return undefined
  const { host, port } = parseHostPort(c.listen, 'http.listen', true)
  assertBasePath(c.basePath)
  if ((c.tlsCert === undefined) !== (c.tlsKey === undefined)) {
    throw new HopgateError('HOPGATE_ERR_CONFIG_INVALID', 'http: tlsCert and tlsKey go together')
  }
  const tls =
    c.tlsCert !== undefined && c.tlsKey !== undefined
      ? { cert: await readFile(c.tlsCert), key: await readFile(c.tlsKey) }
      : undefined
  return { host, port, ...(c.basePath ? { basePath: c.basePath } : {}), ...(tls ? { tls } : {}) }
}
