// `hopgate config validate <file>`: reads an edge or agent YAML config the way `hopgate edge` and
// `hopgate agent run` would (same schemas, same extra checks) without starting anything, and
// prints one line per bad field. Exit 0 when valid, 78 otherwise. Env vars and flags are not
// applied: the file is what is checked.
import { readFileSync } from 'node:fs'
import { Option, type Command } from 'commander'
import { parseDocument } from 'yaml'
import type { z } from 'zod'
import { CONFIG_VERSION } from '../../config.js'
import { HopgateError } from '../../errors.js'
import { parseTcpMapping } from '../../../edge/ingress/tcp.js'
import { agentConfigProblems, agentConfigSchema } from './agent.js'
import { edgeConfigSchema } from './edge.js'
import { parseHostPort, printJson } from './common.js'

type Kind = 'edge' | 'agent'

const EDGE_ONLY = ['tunnel', 'admin', 'tcp', 'heartbeatIntervalMs', 'leaseTtlMs']
const AGENT_ONLY = [
  'edges',
  'slots',
  'listen',
  'advertise',
  'maxProjects',
  'projects',
  'adminListen',
]

export interface Validation {
  file: string
  kind: Kind | undefined
  ok: boolean
  problems: string[]
}

/** Validates `file` as `kind` (or the kind its keys point to); never throws for bad content. */
export function validateConfigFile(file: string, kind?: Kind): Validation {
  const fail = (problems: string[], k = kind): Validation => ({
    file,
    kind: k,
    ok: false,
    problems,
  })
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    return fail([`cannot read: ${(err as NodeJS.ErrnoException).code ?? 'error'}`])
  }
  const doc = parseDocument(text, { uniqueKeys: true })
  if (doc.errors.length > 0) {
    return fail(
      doc.errors.map((e) => {
        const at = e.linePos ? `line ${e.linePos[0].line} col ${e.linePos[0].col}: ` : ''
        return `${at}YAML ${e.code}`
      }),
    )
  }
  const value: unknown = doc.toJS()
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return fail(['(top): expected a mapping'])
  }
  const { version, ...rest } = value as Record<string, unknown>
  const problems: string[] = []
  if (version !== CONFIG_VERSION) {
    problems.push(`version: must be ${CONFIG_VERSION}, got ${JSON.stringify(version ?? null)}`)
  }
  const k = kind ?? guessKind(rest)
  if (!k) return fail([...problems, '(top): cannot tell edge from agent config: give --for'])
  const schema: z.ZodObject = k === 'edge' ? edgeConfigSchema : agentConfigSchema
  const parsed = schema.safeParse(rest)
  if (!parsed.success) {
    for (const i of parsed.error.issues)
      problems.push(`${i.path.join('.') || '(top)'}: ${i.message}`)
    return fail(problems, k)
  }
  problems.push(
    ...(k === 'edge'
      ? edgeProblems(parsed.data as z.output<typeof edgeConfigSchema>)
      : agentConfigProblems(parsed.data as z.output<typeof agentConfigSchema>)),
  )
  return { file, kind: k, ok: problems.length === 0, problems }
}

function guessKind(obj: Record<string, unknown>): Kind | undefined {
  const keys = Object.keys(obj)
  const edge = keys.filter((key) => EDGE_ONLY.includes(key)).length
  const agent = keys.filter((key) => AGENT_ONLY.includes(key)).length
  return edge > agent ? 'edge' : agent > edge ? 'agent' : undefined
}

function edgeProblems(config: z.output<typeof edgeConfigSchema>): string[] {
  const problems: string[] = []
  const check = (what: string, fn: () => unknown, want: string): void => {
    try {
      fn()
    } catch {
      problems.push(`${what}: ${want}`)
    }
  }
  check(
    'tunnel.listen',
    () => parseHostPort(config.tunnel.listen, 'tunnel.listen', true),
    'want host:port',
  )
  check(
    'admin.listen',
    () => parseHostPort(config.admin.listen, 'admin.listen', true),
    'want host:port',
  )
  config.tcp.forEach((m, i) =>
    check(`tcp.${i}`, () => parseTcpMapping(m), 'want <listen host:port>=<project>:<port>'),
  )
  return problems
}

export function registerConfig(program: Command): void {
  const config = program.command('config').description('configuration files')
  config
    .command('validate <file>')
    .description('check an edge or agent YAML config; exit 0 if valid, 78 if not')
    .addOption(
      new Option('--for <kind>', 'edge or agent (default: guessed from the keys)').choices([
        'edge',
        'agent',
      ]),
    )
    .option('--json', 'print {file, kind, ok, problems}')
    .action((file: string, opts: { for?: Kind; json?: boolean }) => {
      const v = validateConfigFile(file, opts.for)
      if (opts.json) printJson(v)
      else if (v.ok) process.stdout.write(`${file}: valid ${v.kind} config\n`)
      else for (const p of v.problems) process.stderr.write(`${file}: ${p}\n`)
      if (!v.ok) {
        const n = v.problems.length
        throw new HopgateError(
          'HOPGATE_ERR_CONFIG_INVALID',
          `${file}: ${n} problem${n === 1 ? '' : 's'}`,
        )
      }
    })
}
