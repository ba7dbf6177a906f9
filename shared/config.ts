// Configuration loading for every hopgate command: one zod schema per component gives types,
// units (in field names) and defaults; values come from defaults < YAML file < HOPGATE_* env <
// command-line flags. Every leaf has exactly one env var and one flag, derived from its path
// (`tunnel.keepAliveIntervalMs` -> HOPGATE_TUNNEL_KEEP_ALIVE_INTERVAL_MS, --tunnel-keep-alive-interval-ms).
// Errors are HOPGATE_ERR_CONFIG_INVALID (exit 78) naming the path and where the value came from.
import { readFileSync } from 'node:fs'
import { parseDocument } from 'yaml'
import { z } from 'zod'
import { HopgateError } from './errors.js'

/** The config file format version this build reads. */
export const CONFIG_VERSION = 1

type LeafKind = 'string' | 'number' | 'boolean' | 'enum' | 'array'

export interface ConfigLeaf {
  path: string[]
  env: string
  flag: string
  kind: LeafKind
  description: string | undefined
  defaultValue: unknown
}

interface Def {
  type: string
  innerType?: z.ZodType
  defaultValue?: unknown
  shape?: Record<string, z.ZodType>
}

const defOf = (t: z.ZodType): Def => (t as unknown as { _zod: { def: Def } })._zod.def

/** Every leaf option of a schema with its env var and flag names, in declaration order. */
export function configLeaves(schema: z.ZodObject, prefix: string[] = []): ConfigLeaf[] {
  const out: ConfigLeaf[] = []
  for (const [key, field] of Object.entries(schema.shape)) {
    const path = [...prefix, key]
    let t = field
    let defaultValue: unknown
    for (;;) {
      const d = defOf(t)
      if (d.type === 'default') defaultValue = d.defaultValue
      if ((d.type === 'default' || d.type === 'optional') && d.innerType) t = d.innerType
      else break
    }
    const kind = defOf(t).type
    if (kind === 'object') {
      out.push(...configLeaves(t as z.ZodObject, path))
      continue
    }
    if (!['string', 'number', 'boolean', 'enum', 'array'].includes(kind)) {
      throw new Error(`config schema: unsupported field type ${kind} at ${path.join('.')}`)
    }
    out.push({
      path,
      env: 'HOPGATE_' + path.map((p) => snake(p).toUpperCase()).join('_'),
      flag: '--' + path.map(snake).join('-').replaceAll('_', '-'),
      kind: kind as LeafKind,
      description: field.description ?? t.description,
      defaultValue,
    })
  }
  return out
}

export interface ConfigSources {
  /** Path of a YAML file; its `version:` must be CONFIG_VERSION. */
  file?: string
  env?: NodeJS.ProcessEnv
  /** Flag values by flag name without dashes' prefix, e.g. `{ 'tunnel-listen': '0.0.0.0:7443' }`. */
  flags?: Record<string, string | boolean | undefined>
}

/** Loads, merges and validates; the result is fully typed with every default filled in. */
export function loadConfig<S extends z.ZodObject>(
  schema: S,
  sources: ConfigSources = {},
): z.output<S> {
  const origin = new Map<string, string>()
  const merged: Record<string, unknown> = sources.file ? readYaml(sources.file, origin) : {}
  for (const leaf of configLeaves(schema)) {
    const key = leaf.path.join('.')
    const fromEnv = sources.env?.[leaf.env]
    if (fromEnv !== undefined && fromEnv !== '') {
      setPath(merged, leaf.path, coerce(fromEnv, leaf, leaf.env))
      origin.set(key, `env ${leaf.env}`)
    }
    const fromFlag = sources.flags?.[leaf.flag.slice(2)]
    if (fromFlag !== undefined) {
      setPath(
        merged,
        leaf.path,
        typeof fromFlag === 'boolean' ? fromFlag : coerce(fromFlag, leaf, leaf.flag),
      )
      origin.set(key, `flag ${leaf.flag}`)
    }
  }
  const parsed = schema.safeParse(merged)
  if (parsed.success) return parsed.data
  const lines = parsed.error.issues.map((i) => {
    const key = i.path.join('.')
    const from = origin.get(key) ?? (sources.file ? `file ${sources.file}` : 'defaults')
    return `${key || '(top)'} (${from}): ${i.message}`
  })
  throw new HopgateError('HOPGATE_ERR_CONFIG_INVALID', lines.join('; '))
}

function readYaml(file: string, origin: Map<string, string>): Record<string, unknown> {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    throw new HopgateError('HOPGATE_ERR_CONFIG_INVALID', `cannot read ${file}`, { cause: err })
  }
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true })
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!
    const where = e.linePos ? `${file}:${e.linePos[0].line}:${e.linePos[0].col}` : file
    throw new HopgateError('HOPGATE_ERR_CONFIG_INVALID', `${where}: ${e.code}`)
  }
  const value: unknown = doc.toJS()
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new HopgateError('HOPGATE_ERR_CONFIG_INVALID', `${file}: expected a mapping at the top`)
  }
  const { version, ...rest } = value as Record<string, unknown>
  if (version !== CONFIG_VERSION) {
    throw new HopgateError(
      'HOPGATE_ERR_CONFIG_INVALID',
      `${file}: version must be ${CONFIG_VERSION}, got ${JSON.stringify(version)}`,
    )
  }
  for (const key of leafKeys(rest)) origin.set(key, `file ${file}`)
  return rest
}

function leafKeys(obj: Record<string, unknown>, prefix = ''): string[] {
  return Object.entries(obj).flatMap(([k, v]) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? leafKeys(v as Record<string, unknown>, `${prefix}${k}.`)
      : [`${prefix}${k}`],
  )
}

function coerce(raw: string, leaf: ConfigLeaf, from: string): unknown {
  switch (leaf.kind) {
    case 'number':
      if (!/^-?\d+(\.\d+)?$/.test(raw.trim())) {
        throw new HopgateError('HOPGATE_ERR_CONFIG_INVALID', `${from}: not a number: ${raw}`)
      }
      return Number(raw)
    case 'boolean':
      if (/^(true|1|yes)$/i.test(raw)) return true
      if (/^(false|0|no)$/i.test(raw)) return false
      throw new HopgateError('HOPGATE_ERR_CONFIG_INVALID', `${from}: not a boolean: ${raw}`)
    case 'array':
      return raw
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s.length > 0)
    default:
      return raw
  }
}

function setPath(target: Record<string, unknown>, path: string[], value: unknown): void {
  let node = target
  for (const key of path.slice(0, -1)) {
    const next = node[key]
    if (next === null || typeof next !== 'object' || Array.isArray(next)) node[key] = {}
    node = node[key] as Record<string, unknown>
  }
  node[path[path.length - 1]!] = value
}

function snake(camel: string): string {
  return camel.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase()
}
