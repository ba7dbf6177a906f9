// Helpers the edge, agent, CA and admin commands share: strict durations and host:port parsing,
// commander options generated from a config schema's leaves (so YAML, env and flags stay one
// schema, shared/config.ts), the first-signal wait, and the admin API client that turns the edge's
// `{error:{code,message}}` back into a typed HopgateError (and so into an exit code).
import { InvalidArgumentError, Option, type Command } from 'commander'
import type { z } from 'zod'
import { configLeaves, loadConfig } from '../../config.js'
import { ERROR_CATALOG, HopgateError, type ErrorCode } from '../../errors.js'
import type { Logger } from '../../log.js'

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const

/** `250ms`, `30s`, `15m`, `24h`, `7d`: one integer and one unit, nothing else. */
export function parseDuration(value: string): number {
  const m = /^([1-9]\d{0,9})(ms|s|m|h|d)$/.exec(value)
  if (!m) throw new InvalidArgumentError('want a duration like 30s, 15m, 24h (units ms s m h d)')
  return Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS]
}

export interface HostPort {
  host: string
  port: number
}

/** `host:port` or `[v6]:port`; port 0 is allowed only where a listener picks its own. */
export function parseHostPort(value: string, what: string, allowZero = false): HostPort {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^\s:[\]]+):(\d{1,5})$/.exec(value)
  const port = Number(m?.[2])
  if (!m || port > 65535 || (port === 0 && !allowZero)) {
    throw new HopgateError('HOPGATE_ERR_CONFIG_INVALID', `${what}: want host:port, got ${value}`)
  }
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port }
}

export function formatHostPort(a: { address: string; port: number }): string {
  return a.address.includes(':') ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`
}

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value) + '\n')
}

const collect = (value: string, previous: string[] | undefined): string[] => [
  ...(previous ?? []),
  value,
]

/**
 * Adds one commander option per schema leaf. No commander defaults: loadConfig applies them
 * after the file and env, which a commander default would otherwise override. `rename` maps a
 * leaf's flag (`--edges`) to the spelling users type (`--edge`).
 */
export function addConfigOptions(
  cmd: Command,
  schema: z.ZodObject,
  rename: Record<string, string> = {},
): Command {
  for (const leaf of configLeaves(schema)) {
    const flag = rename[leaf.flag] ?? leaf.flag
    const about = [leaf.description ?? '', `env ${leaf.env}`]
    if (leaf.defaultValue !== undefined) about.push(`default ${JSON.stringify(leaf.defaultValue)}`)
    const text = about.filter(Boolean).join('; ')
    if (leaf.kind === 'boolean') cmd.addOption(new Option(flag, text))
    else if (leaf.kind === 'array')
      cmd.addOption(new Option(`${flag} <value>`, `${text} (repeatable)`).argParser(collect))
    else cmd.addOption(new Option(`${flag} <value>`, text))
  }
  return cmd.option('--config <file>', 'YAML config file (version: 1)')
}

/** Loads `schema` from --config, HOPGATE_* env and the flags addConfigOptions added. */
export function configFromOptions<S extends z.ZodObject>(
  schema: S,
  opts: Record<string, unknown>,
  rename: Record<string, string> = {},
): z.output<S> {
  const flags: Record<string, string | boolean | undefined> = {}
  for (const leaf of configLeaves(schema)) {
    const key = camel((rename[leaf.flag] ?? leaf.flag).slice(2))
    const v = opts[key]
    if (v === undefined) continue
    // Arrays go through loadConfig's comma split; mappings and addresses hold no commas.
    flags[leaf.flag.slice(2)] = Array.isArray(v) ? v.join(',') : (v as string | boolean)
  }
  const file = typeof opts.config === 'string' ? opts.config : undefined
  return loadConfig(schema, { ...(file ? { file } : {}), env: process.env, flags })
}

function camel(flag: string): string {
  return flag.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase())
}

/** Resolves on the first SIGINT/SIGTERM; a second one exits at once. */
export function firstSignal(log: Logger): { signal: Promise<NodeJS.Signals>; dispose(): void } {
  let resolve!: (s: NodeJS.Signals) => void
  const signal = new Promise<NodeJS.Signals>((r) => (resolve = r))
  let seen = false
  const handler = (sig: NodeJS.Signals): void => {
    if (seen) {
      log.warn({ signal: sig }, 'second signal: exiting without cleanup')
      process.exit(1)
    }
    seen = true
    resolve(sig)
  }
  process.on('SIGINT', handler)
  process.on('SIGTERM', handler)
  return {
    signal,
    dispose: () => {
      process.off('SIGINT', handler)
      process.off('SIGTERM', handler)
    },
  }
}

export const DEFAULT_ADMIN = '127.0.0.1:9090'

export function adminOption(): Option {
  return new Option('--admin <host:port>', 'edge admin API address')
    .env('HOPGATE_ADMIN')
    .default(DEFAULT_ADMIN)
}

/** One admin API call; non-2xx answers reject with the edge's typed code where it has one. */
export async function adminCall<T>(
  admin: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<T> {
  const { host, port } = parseHostPort(admin, '--admin')
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}${path}`
  let res: Response
  try {
    res = await fetch(url, {
      method,
      signal: AbortSignal.timeout(10_000),
      ...(body === undefined
        ? {}
        : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
    })
  } catch (err) {
    throw new HopgateError('HOPGATE_ERR_ADMIN_UNREACHABLE', admin, { cause: err })
  }
  const data = (await res.json().catch(() => undefined)) as
    { error?: { code?: unknown; message?: unknown } } | undefined
  if (res.ok) return data as T
  const code = data?.error?.code
  const message = typeof data?.error?.message === 'string' ? data.error.message : res.statusText
  if (typeof code === 'string' && code in ERROR_CATALOG) {
    // Re-raised under its own code so the CLI maps it like a local failure; the edge's text is
    // already prefixed with the catalogue summary, so it goes in as the cause.
    throw new HopgateError(code as ErrorCode, undefined, { cause: new Error(message) })
  }
  throw new HopgateError('HOPGATE_ERR_ADMIN_FAILED', `HTTP ${res.status}: ${message}`)
}
