// `hopgate edge`: runs one edge (edge/edge.ts) until SIGINT/SIGTERM. Its options are one zod
// schema, so each is a YAML key, a HOPGATE_* env var and a flag (shared/config.ts); `--tcp` is
// repeatable. Logs are pino JSON on stderr; `--json` prints one ready line on stdout with the
// real addresses (port 0 picks free ports, which tests rely on).
import type { Command } from 'commander'
import { z } from 'zod'
import { startEdge } from '../../../edge/edge.js'
import { parseTcpMapping } from '../../../edge/ingress/tcp.js'
import { readFile } from 'node:fs/promises'
import { createLogger } from '../../log.js'
import { HopgateError } from '../../errors.js'
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
      })
      .strict()
      .default({
        userCaFiles: [],
        upstreamUser: '{project}',
        allowRemoteForward: false,
        loginGraceMs: 20_000,
      }),
    heartbeatIntervalMs: z.number().int().min(50).max(600_000).default(5000),
    leaseTtlMs: z.number().int().min(100).max(3_600_000).optional(),
  })
  .strict()

/** `--ssh host:port` rather than the derived `--ssh-listen`. */
const SSH_FLAGS = { '--ssh-listen': '--ssh' }

export type EdgeConfig = z.output<typeof edgeConfigSchema>

export function registerEdge(program: Command): void {
  const cmd = program
    .command('edge')
    .description('run an edge: tunnel listener, raw TCP ingress and the admin API')
    .option('--json', 'print one JSON ready line on stdout')
  addConfigOptions(cmd, edgeConfigSchema, SSH_FLAGS)
  cmd.action(async (opts: Record<string, unknown>) => {
    const config = configFromOptions(edgeConfigSchema, opts, SSH_FLAGS)
    // Every address is checked before anything listens, so a typo exits 78 with nothing opened.
    const tunnel = parseHostPort(config.tunnel.listen, 'tunnel.listen', true)
    const admin = parseHostPort(config.admin.listen, 'admin.listen', true)
    const tcp = config.tcp.map(parseTcpMapping)
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
    try {
      const edge = await startEdge({
        stateDir: config.stateDir,
        tunnelHost: tunnel.host,
        tunnelPort: tunnel.port,
        adminHost: admin.host,
        adminPort: admin.port,
        tcp,
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
              },
            }
          : {}),
        ...(config.leaseTtlMs !== undefined ? { leaseTtlMs: config.leaseTtlMs } : {}),
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
        ssh: edge.ssh ? formatHostPort(edge.ssh.address) : null,
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
