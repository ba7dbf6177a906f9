// The HTTP ingress's request-target parser: pure, no I/O. It refuses every target DESIGN.md
// "Ingress contracts" refuses, cuts the project id out of the raw target with one strict pattern
// before anything is decoded, and says what the upstream gets. It does not look at headers (Host,
// Upgrade: listener.ts and websocket.ts) or credentials (auth.ts).
import { HopgateError } from '../../shared/errors.js'

/** Targets longer than this are refused with 414. */
export const MAX_TARGET_BYTES = 4096

/** The query parameter holding a one-time user token (turned into the session cookie). */
export const TOKEN_QUERY_PARAM = 'hopgate_token'

export type TargetKind = 'port' | 'server' | 'raw'

export interface ParsedTarget {
  project: string
  kind: TargetKind
  /** The tunnel service the agent dials: `port` for /port/ and /server/, `raw` for /raw/. */
  service: 'port' | 'raw'
  /** 1-65535 for /port/ and /server/, 0 for /raw/. */
  port: number
  /** The request target the project service gets: bytes of the original, token removed. */
  upstreamTarget: string
  /** Where a `?hopgate_token=` request is redirected: the original target without the token. */
  cleanTarget: string
  /** The one-time token from the query, if there was one. */
  queryToken: string | undefined
  /** `<basePath>/<project>/`: the session cookie's Path, so it goes to this project only. */
  projectPrefix: string
}

// The one pattern: lowercase UUID, kind, port without leading zeros, then the rest (or nothing).
const ROUTE_RE =
  /^\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\/(?:(port|server)\/([1-9][0-9]{0,4})|(raw))(\/.*)?$/
const BASE_PATH_RE = /^(?:\/[A-Za-z0-9._~-]+)*$/
const TOKEN_VALUE_RE = /^[A-Za-z0-9._-]{1,2048}$/
// After a valid %XX check: encoded slash, backslash, and control characters (NUL, CR, LF...),
// which some upstream frameworks decode into path separators or header breaks.
const ENCODED_FORBIDDEN_RE = /%(?:2f|5c|[01][0-9a-f]|7f)/i
const PCT_RE = /%(?![0-9a-fA-F]{2})/
const DOT_SEGMENT_RE = /^(?:\.|%2e){1,2}$/i

function bad(detail: string): never {
  throw new HopgateError('HOPGATE_ERR_HTTP_BAD_TARGET', detail)
}

/** Checks a configured base path: '' or `/seg[/seg...]` without a trailing slash. */
export function assertBasePath(basePath: string): void {
  if (!BASE_PATH_RE.test(basePath) || basePath.split('/').some((s) => s === '.' || s === '..')) {
    throw new HopgateError(
      'HOPGATE_ERR_CONFIG_INVALID',
      `http base path ${JSON.stringify(basePath)}: want "" or /seg[/seg...], no trailing slash`,
    )
  }
}

/**
 * Parses Node's `req.url` (the raw request target, as latin1 chars). Throws
 * HOPGATE_ERR_HTTP_TARGET_TOO_LONG (414) or HOPGATE_ERR_HTTP_BAD_TARGET (400).
 */
export function parseTarget(raw: string, basePath = ''): ParsedTarget {
  if (raw.length > MAX_TARGET_BYTES) {
    throw new HopgateError('HOPGATE_ERR_HTTP_TARGET_TOO_LONG', `${raw.length} bytes`)
  }
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i)
    // Visible ASCII only: no controls, NUL, space, DEL or non-ASCII; no backslash; no fragment.
    if (c < 0x21 || c > 0x7e || c === 0x5c || c === 0x23) bad(`byte 0x${c.toString(16)} at ${i}`)
  }
  // Origin form only: absolute (`http://...`), authority (`host:443`) and asterisk form refused.
  if (raw.charCodeAt(0) !== 0x2f) bad('not origin-form')
  const q = raw.indexOf('?')
  const path = q < 0 ? raw : raw.slice(0, q)
  const query = q < 0 ? undefined : raw.slice(q + 1)
  if (path.includes('//')) bad('empty path segment')
  if (PCT_RE.test(path)) bad('bad percent-encoding')
  if (ENCODED_FORBIDDEN_RE.test(path)) bad('encoded slash, backslash or control character')
  for (const seg of path.split('/')) if (DOT_SEGMENT_RE.test(seg)) bad('dot segment')

  if (basePath && !path.startsWith(basePath + '/')) bad('outside the base path')
  const m = ROUTE_RE.exec(path.slice(basePath.length))
  if (!m) bad('not /{project}/port|server/{port}/..., or /{project}/raw/...')
  const project = m[1]!
  const port = m[3] === undefined ? 0 : Number(m[3])
  if (port > 65535) bad('port above 65535')
  const kind: TargetKind = m[4] ? 'raw' : (m[2] as 'port' | 'server')
  const rest = m[5] ?? ''

  const { queryToken, kept } = splitQuery(query)
  const suffix = kept === undefined ? '' : `?${kept}`
  const upstreamPath = kind === 'port' ? path : rest || '/'
  return {
    project,
    kind,
    service: kind === 'raw' ? 'raw' : 'port',
    port,
    upstreamTarget: upstreamPath + suffix,
    cleanTarget: path + suffix,
    queryToken,
    projectPrefix: `${basePath}/${project}/`,
  }
}

/** Removes `hopgate_token=` from the query (at most one); the rest stays byte for byte. */
function splitQuery(query: string | undefined): {
  queryToken: string | undefined
  kept: string | undefined
} {
  if (query === undefined) return { queryToken: undefined, kept: undefined }
  let queryToken: string | undefined
  const kept: string[] = []
  for (const part of query.split('&')) {
    const eq = part.indexOf('=')
    const name = eq < 0 ? part : part.slice(0, eq)
    if (name !== TOKEN_QUERY_PARAM) {
      kept.push(part)
      continue
    }
    if (queryToken !== undefined) bad(`more than one ${TOKEN_QUERY_PARAM}`)
    const value = eq < 0 ? '' : part.slice(eq + 1)
    if (!TOKEN_VALUE_RE.test(value)) bad(`${TOKEN_QUERY_PARAM} is not a token`)
    queryToken = value
  }
  if (queryToken === undefined) return { queryToken, kept: query }
  return { queryToken, kept: kept.length > 0 ? kept.join('&') : undefined }
}
