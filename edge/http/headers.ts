// Header hygiene at the edge, both ways. Requests: drop hopgate's own cookie and bearer header,
// hop-by-hop headers and every header named in Connection, names with `_` (some frameworks read
// them as `-`), anything the client says in X-Forwarded-*/Forwarded/X-Hopgate-*; then set
// X-Forwarded-For/-Proto/-Host and X-Hopgate-Account. Responses: drop hop-by-hop headers and any
// Set-Cookie naming the hopgate cookie (a project must not plant sessions). Pure functions.
import type { IncomingHttpHeaders } from 'node:http'
import { HopgateError } from '../../shared/errors.js'
import { SESSION_COOKIE, isHopgateBearer } from './auth.js'

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
  // The edge already answered 100 Continue itself (Node's default); the upstream must not again.
  'expect',
])

/** Headers a request may carry at most; more is refused (Node would silently truncate). */
export const MAX_REQUEST_HEADERS = 100

/** Refuses duplicate Host (and a missing one: Node already refuses that for HTTP/1.1). */
export function checkRequestHeaders(rawHeaders: readonly string[]): void {
  if (rawHeaders.length / 2 > MAX_REQUEST_HEADERS) {
    throw new HopgateError('HOPGATE_ERR_HTTP_BAD_REQUEST', 'too many headers')
  }
  let hosts = 0
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() === 'host') hosts++
  }
  if (hosts > 1) throw new HopgateError('HOPGATE_ERR_HTTP_BAD_REQUEST', 'duplicate Host')
}

function connectionTokens(rawHeaders: readonly string[]): Set<string> {
  const out = new Set<string>()
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() !== 'connection') continue
    for (const t of rawHeaders[i + 1]!.split(',')) out.add(t.trim().toLowerCase())
  }
  return out
}

/** The Cookie value without hopgate's session cookie; undefined when nothing else is left. */
export function stripSessionCookie(value: string): string | undefined {
  const kept = value
    .split(';')
    .map((p) => p.trim())
    .filter((p) => p.length > 0 && p.split('=', 1)[0]!.trim() !== SESSION_COOKIE)
  return kept.length > 0 ? kept.join('; ') : undefined
}

export interface ForwardContext {
  account: string
  clientIp: string
  proto: 'http' | 'https'
  /** Keep `Upgrade: websocket` and `Connection: Upgrade` (the WebSocket handshake). */
  websocket?: boolean
  /** The body came chunked: say so again, since Transfer-Encoding is hop-by-hop. */
  chunked?: boolean
}

/** The request headers the project service gets, as a flat [name, value, ...] list. */
export function upstreamRequestHeaders(
  rawHeaders: readonly string[],
  ctx: ForwardContext,
): string[] {
  const named = connectionTokens(rawHeaders)
  const out: string[] = []
  let host = ''
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!
    const value = rawHeaders[i + 1]!
    const lower = name.toLowerCase()
    if (HOP_BY_HOP.has(lower) || named.has(lower) || lower.includes('_')) continue
    if (lower.startsWith('x-forwarded-') || lower === 'forwarded') continue
    if (lower.startsWith('x-hopgate-')) continue
    if (lower === 'authorization' && isHopgateBearer(value)) continue
    if (lower === 'cookie') {
      const kept = stripSessionCookie(value)
      if (kept !== undefined) out.push(name, kept)
      continue
    }
    if (lower === 'host') host = value
    out.push(name, value)
  }
  if (ctx.websocket) out.push('Connection', 'Upgrade', 'Upgrade', 'websocket')
  if (ctx.chunked) out.push('Transfer-Encoding', 'chunked')
  out.push(
    'X-Forwarded-For',
    ctx.clientIp,
    'X-Forwarded-Proto',
    ctx.proto,
    'X-Forwarded-Host',
    host,
    'X-Hopgate-Account',
    ctx.account,
  )
  return out
}

/** The response headers the user gets, as a flat list (hop-by-hop and hopgate cookies gone). */
export function downstreamResponseHeaders(
  rawHeaders: readonly string[],
  upgrade = false,
): string[] {
  const named = connectionTokens(rawHeaders)
  const out: string[] = []
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!
    const value = rawHeaders[i + 1]!
    const lower = name.toLowerCase()
    if (upgrade && (lower === 'connection' || lower === 'upgrade')) {
      out.push(name, value)
      continue
    }
    if (HOP_BY_HOP.has(lower) || named.has(lower)) continue
    if (lower === 'set-cookie' && value.split('=', 1)[0]!.trim() === SESSION_COOKIE) continue
    out.push(name, value)
  }
  return out
}

/** The first value of a header from Node's parsed headers. */
export function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name]
  return Array.isArray(v) ? v[0] : v
}
