// `hopgate agent join` (enrollment over TLS against the CA pinned in the token) and `hopgate agent
// run` (the reverse connector, agent/agent.ts). `run` reads one zod schema through shared/config.ts;
// `projects` is a map keyed by project id, which has no flag form, so it comes from the YAML file
// only and is validated here with the registry's own schema.
import os from 'node:os'
import { statfsSync } from 'node:fs'
import { Option, type Command } from 'commander'
import { z } from 'zod'
import { joinOverTls, saveRunnerIdentity } from '../../../certs/enroll.js'
import { startAgent } from '../../../agent/agent.js'
import {
  projectTargetsSchema,
  PROJECT_ID,
  type ProjectTargetsInput,
} from '../../../agent/registry.js'
import type { AgentReport } from '../../../agent/control.js'
import { HopgateError } from '../../errors.js'
import { createLogger } from '../../log.js'
import { PromMetrics } from '../../metrics-prom.js'
import { registerAgentProject } from './agent-project.js'
import {
  addConfigOptions,
  configFromOptions,
  firstSignal,
  formatHostPort,
  parseHostPort,
  printJson,
} from './common.js'

// Loose: loadConfig derives flags from leaves and cannot describe a map, so `projects` passes
// through untouched and projectsSchema checks it below.
export const agentConfigSchema = z.looseObject({
  stateDir: z.string().min(1).default('/var/lib/hopgate/agent').describe('agent state directory'),
  edges: z.array(z.string()).default([]).describe('edge tunnel address host:port'),
  discovery: z
    .string()
    .default('')
    .describe("URL listing live edges (an edge's GET /v1/edges), merged with --edge"),
  discoveryRefreshMs: z
    .number()
    .int()
    .min(1000)
    .max(3_600_000)
    .default(30_000)
    .describe('how often the discovery URL is read again, in ms'),
  slots: z.number().int().min(0).max(16).default(2).describe('sessions kept to the edges'),
  listen: z
    .string()
    .default('')
    .describe('direct connector: accept the edge dialing in at host:port (empty: off)'),
  advertise: z
    .string()
    .default('')
    .describe('address edges dial for the direct connector (default: listen)'),
  adminListen: z
    .string()
    .default('')
    .describe('health and metrics HTTP listener host:port (/healthz /readyz /metrics; empty: off)'),
  maxProjects: z
    .number()
    .int()
    .min(0)
    .max(100_000)
    .default(50)
    .describe('projects this runner takes'),
})

const projectsSchema = z.record(z.string().regex(PROJECT_ID), projectTargetsSchema).default({})

/** Flag spelling users type for a leaf whose path name is plural. */
const RENAME = { '--edges': '--edge', '--admin-listen': '--admin' }

function loadAgentConfig(opts: Record<string, unknown>) {
  return checkAgentConfig(configFromOptions(agentConfigSchema, opts, RENAME))
}

/** The checks past the schema: projects, edge and listen addresses. Each problem one string. */
export function agentConfigProblems(config: z.output<typeof agentConfigSchema>): string[] {
  const problems: string[] = []
  const parsed = projectsSchema.safeParse(config.projects)
  if (!parsed.success) {
    for (const i of parsed.error.issues) problems.push(`projects.${i.path.join('.')}: ${i.message}`)
  }
  if (config.edges.length === 0 && !config.discovery) {
    problems.push('edges: no edge: give --edge host:port, edges: or --discovery <url>')
  }
  if (config.discovery && !/^https?:\/\//.test(config.discovery)) {
    problems.push(`discovery: want an http(s) URL, got ${JSON.stringify(config.discovery)}`)
  }
  const addr = (value: string, what: string, allowZero: boolean): void => {
    try {
      parseHostPort(value, what, allowZero)
    } catch {
      problems.push(`${what}: want host:port, got ${JSON.stringify(value)}`)
    }
  }
  config.edges.forEach((e, i) => addr(e, `edges.${i}`, false))
  if (config.listen) addr(config.listen, 'listen', true)
  if (config.adminListen) addr(config.adminListen, 'adminListen', true)
  return problems
}

function checkAgentConfig(config: z.output<typeof agentConfigSchema>) {
  const problems = agentConfigProblems(config)
  if (problems.length > 0) throw new HopgateError('HOPGATE_ERR_CONFIG_INVALID', problems.join('; '))
  // Checked above for a config-error exit; the registry parses the input form itself.
  const projects = (config.projects ?? {}) as Record<string, ProjectTargetsInput>
  return { ...config, projects }
}

const discoverySchema = z.object({
  edges: z.array(z.object({ tunnelAddress: z.string().max(300) }).loose()).max(256),
})

/**
 * The tunnel addresses a discovery URL lists (edge/cluster/discovery.ts serves them). Trust is
 * not taken from it: every edge dialed must still present a cert from the pinned edge CA.
 */
export async function discoverEdges(url: string, timeoutMs = 3000): Promise<string[]> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) })
    if (!res.ok) throw new Error(`HTTP ${res.status}`)
    const body = discoverySchema.parse(await res.json())
    const out = body.edges.map((e) => e.tunnelAddress)
    for (const a of out) parseHostPort(a, 'discovered edge')
    return out
  } catch (err) {
    throw new HopgateError('HOPGATE_ERR_DISCOVERY_FAILED', url, { cause: err })
  }
}

/** Configured edges first (their order picks the slots' first edges), then discovered ones. */
function mergeEdges(configured: readonly string[], discovered: readonly string[]): string[] {
  return [...new Set([...configured, ...discovered])]
}

/** What the hello and heartbeats report; statfs is a cheap syscall, so it is read each time. */
function reporter(stateDir: string, maxProjects: number): () => AgentReport {
  return () => {
    let storage = { freeBytes: 0, totalBytes: 0 }
    try {
      const s = statfsSync(stateDir)
      storage = { freeBytes: s.bavail * s.bsize, totalBytes: s.blocks * s.bsize }
    } catch {
      // An unreadable state dir reports no free space, which keeps new projects away.
    }
    return {
      capacity: { maxProjects, cpus: os.availableParallelism(), memoryBytes: os.totalmem() },
      storage,
    }
  }
}

export function registerAgent(program: Command): void {
  const agent = program.command('agent').description('the runner side: enrollment and tunnels')
  registerAgentProject(agent)

  agent
    .command('join')
    .description('enroll this runner with a join token and store its certificate')
    .requiredOption('--edge <host:port>', 'edge tunnel address')
    .requiredOption('--token <token>', 'join token from `hopgate token create`')
    .addOption(
      new Option('--state-dir <dir>', 'agent state directory')
        .env('HOPGATE_STATE_DIR')
        .makeOptionMandatory(),
    )
    .option('--json', 'print {runnerId, stateDir}')
    .action(async (opts: { edge: string; token: string; stateDir: string; json?: boolean }) => {
      const { host, port } = parseHostPort(opts.edge, '--edge')
      const identity = await joinOverTls({ host, port, token: opts.token })
      await saveRunnerIdentity(opts.stateDir, identity)
      if (opts.json) printJson({ runnerId: identity.runnerId, stateDir: opts.stateDir })
      else process.stdout.write(`enrolled as runner ${identity.runnerId} in ${opts.stateDir}\n`)
    })

  const run = agent
    .command('run')
    .description('keep tunnels to the edges and serve the configured projects')
    .option('--json', 'print one JSON ready line on stdout')
  addConfigOptions(run, agentConfigSchema, RENAME).action(async (opts: Record<string, unknown>) => {
    const config = loadAgentConfig(opts)
    const log = createLogger({ bindings: { cmd: 'agent' } })
    const signals = firstSignal(log)
    const metrics = new PromMetrics({ defaultMetrics: true })
    let refresh: NodeJS.Timeout | undefined
    try {
      let edges = config.edges
      if (config.discovery) {
        try {
          edges = mergeEdges(config.edges, await discoverEdges(config.discovery))
        } catch (err) {
          // Configured edges still work without discovery; nothing at all does not.
          if (config.edges.length === 0) throw err
          log.warn({ event: 'discovery-failed', err }, 'discovery-failed')
        }
        if (edges.length === 0) {
          throw new HopgateError('HOPGATE_ERR_DISCOVERY_FAILED', `${config.discovery}: no edge`)
        }
      }
      const a = await startAgent({
        metrics,
        renderMetrics: () => metrics.render(),
        ...(config.adminListen
          ? { health: parseHostPort(config.adminListen, 'adminListen', true) }
          : {}),
        stateDir: config.stateDir,
        edges,
        slots: config.slots,
        ...(config.listen ? { listen: parseHostPort(config.listen, '--listen', true) } : {}),
        ...(config.advertise ? { advertise: config.advertise } : {}),
        projects: config.projects,
        report: reporter(config.stateDir, config.maxProjects),
        onEvent: (event, detail) => {
          if (event === 'session') log.info({ event, ...detail }, event)
          else log.warn({ event, ...detail }, event)
        },
      })
      if (config.discovery) {
        refresh = setInterval(() => {
          discoverEdges(config.discovery).then(
            (found) => a.connector?.setEdges(mergeEdges(config.edges, found)),
            (err: unknown) => log.warn({ event: 'discovery-failed', err }, 'discovery-failed'),
          )
        }, config.discoveryRefreshMs)
        refresh.unref()
      }
      const ready = {
        event: 'ready',
        runnerId: a.runnerId,
        edges,
        direct: a.direct ? `${config.listen.replace(/:\d+$/, '')}:${a.direct.address.port}` : null,
        projects: a.registry.list(),
        admin: a.health ? formatHostPort(a.health.address) : null,
        adminSocket: a.adminSocket?.path ?? null,
      }
      log.info(ready, 'agent ready')
      if (opts.json) printJson(ready)
      const sig = await signals.signal
      log.info({ signal: sig }, 'stopping')
      await a.close()
      log.info('stopped')
    } finally {
      clearInterval(refresh)
      signals.dispose()
    }
  })
}
