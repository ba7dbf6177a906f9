// `hopgate edge`: runs one edge (edge/edge.ts) until SIGINT/SIGTERM. Its options are one zod
// schema, so each is a YAML key, a HOPGATE_* env var and a flag (shared/config.ts); `--tcp` is
// repeatable. Logs are pino JSON on stderr; `--json` prints one ready line on stdout with the
// real addresses (port 0 picks free ports, which tests rely on).
import type { Command } from 'commander'
import { z } from 'zod'
import { readFile } from 'node:fs/promises'
import { startEdge, type EdgeOptions } from '../../../edge/edge.js'
import { assertBasePath } from '../../../edge/http/target.js'
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
    heartbeatIntervalMs: z.number().int().min(50).max(600_000).default(5000),
    leaseTtlMs: z.number().int().min(100).max(3_600_000).optional(),
  })
  .strict()

export type EdgeConfig = z.output<typeof edgeConfigSchema>

export function registerEdge(program: Command): void {
  const cmd = program
    .command('edge')
    .description(
      'run an edge: tunnel listener, HTTP and WebSocket ingress, raw TCP ingress, admin API',
    )
    .option('--json', 'print one JSON ready line on stdout')
  const rename = { '--http-listen': '--http' }
  addConfigOptions(cmd, edgeConfigSchema, rename).action(async (opts: Record<string, unknown>) => {
    const config = configFromOptions(edgeConfigSchema, opts, rename)
    // Every address is checked before anything listens, so a typo exits 78 with nothing opened.
    const tunnel = parseHostPort(config.tunnel.listen, 'tunnel.listen', true)
    const admin = parseHostPort(config.admin.listen, 'admin.listen', true)
    const tcp = config.tcp.map(parseTcpMapping)
    const http = await httpOption(config.http)
    parseStoreChoice(config.store)
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
        ...(config.leaseTtlMs !== undefined ? { leaseTtlMs: config.leaseTtlMs } : {}),
        onEvent: (event, detail) => {
          const quiet = event === 'session' || event === 'runner-revoked'
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
      }
      log.info(ready, 'edge ready')
      if (opts.json) printJson(ready)
      const sig = await signals.signal
      log.info({ signal: sig }, 'stopping')
      await edge.close()
      log.info('stopped')
    } finally {
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
