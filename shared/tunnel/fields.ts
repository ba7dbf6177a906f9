// Validators for the text fields that both tunnel wire formats carry: project ids, client
// addresses, host:port advice, trace ids and runner/edge ids. Pure predicates; they say yes or no
// and never normalise (DESIGN: inputs in another form are refused, not folded). Building error
// values is the caller's job, so one predicate serves the binary header and the zod schemas.
import { isIPv4, isIPv6 } from 'node:net'

// Lowercase only: the id is a key in stores and logs, two spellings would be two projects.
const PROJECT_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
const TRACE_RE = /^[A-Za-z0-9._-]{1,64}$/
// Same rule as edge/routing/types.ts: ids become file and Redis keys.
const NODE_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/
// Decimal without sign, leading zeros or spaces, so one port has exactly one spelling.
const PORT_RE = /^[1-9][0-9]{0,4}$/
const LABEL_RE = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/

/** Longest client address text, in bytes ("[" + longest IPv6 with zone + "]:65535" fits). */
export const MAX_CLIENT_ADDRESS_BYTES = 64
/** Longest trace id, in bytes. */
export const MAX_TRACE_ID_BYTES = 64
/** Longest `host:port` (a 253-byte DNS name, a colon, five digits). */
export const MAX_HOST_PORT_BYTES = 259

export function isProjectId(value: unknown): value is string {
  return typeof value === 'string' && PROJECT_RE.test(value)
}

export function isTraceId(value: unknown): value is string {
  return typeof value === 'string' && TRACE_RE.test(value)
}

/** Runner and edge ids: 1-63 of [A-Za-z0-9._-], starting with a letter or digit. */
export function isNodeId(value: unknown): value is string {
  return typeof value === 'string' && NODE_ID_RE.test(value)
}

export function isPortText(text: string): boolean {
  return PORT_RE.test(text) && Number(text) <= 65535
}

/** Splits `host:port` / `[v6]:port` at the last colon; undefined when there is none. */
function splitHostPort(
  text: string,
): { host: string; bracketed: boolean; port: string } | undefined {
  const colon = text.lastIndexOf(':')
  if (colon <= 0) return undefined
  const host = text.slice(0, colon)
  const port = text.slice(colon + 1)
  if (host.startsWith('[') && host.endsWith(']')) {
    return { host: host.slice(1, -1), bracketed: true, port }
  }
  return { host, bracketed: false, port }
}

/**
 * The user's address as the edge saw it: `a.b.c.d:port` or `[ipv6]:port` (IPv4-mapped and
 * zoned IPv6 included, because that is what Node reports for dual-stack and link-local peers).
 * Port 1-65535: a TCP peer never has port 0.
 */
export function isClientAddress(value: unknown): value is string {
  if (typeof value !== 'string' || value.length > MAX_CLIENT_ADDRESS_BYTES) return false
  // Printable ASCII only, which also makes the string length its byte length.
  if (!/^[\x21-\x7e]+$/.test(value)) return false
  const parts = splitHostPort(value)
  if (!parts || !isPortText(parts.port)) return false
  return parts.bracketed ? isIPv6(parts.host) : isIPv4(parts.host)
}

/** Formats a socket's `remoteAddress`/`remotePort` the way `isClientAddress` wants it. */
export function formatClientAddress(ip: string, port: number): string {
  return isIPv6(ip) ? `[${ip}]:${port}` : `${ip}:${port}`
}

/** `host:port` where host is a DNS name, an IPv4 address or a bracketed IPv6 address. */
export function isHostPort(value: unknown): value is string {
  if (typeof value !== 'string' || value.length > MAX_HOST_PORT_BYTES) return false
  if (!/^[\x21-\x7e]+$/.test(value)) return false
  const parts = splitHostPort(value)
  if (!parts || !isPortText(parts.port)) return false
  if (parts.bracketed) return isIPv6(parts.host)
  if (isIPv4(parts.host)) return true
  // A dotted-decimal lookalike that is not a valid IPv4 address (`1.2.3.999`) is refused rather
  // than handed to DNS.
  if (/^[0-9.]+$/.test(parts.host)) return false
  const host = parts.host.endsWith('.') ? parts.host.slice(0, -1) : parts.host
  return host.length >= 1 && host.length <= 253 && host.split('.').every((l) => LABEL_RE.test(l))
}

/** The 16 raw bytes of a project id (caller has checked it with `isProjectId`). */
export function projectIdToBytes(project: string, target: Buffer, offset: number): void {
  target.write(project.replaceAll('-', ''), offset, 16, 'hex')
}

/** The lowercase 8-4-4-4-12 text of 16 raw bytes; every 16 bytes name some project. */
export function projectIdFromBytes(source: Buffer, offset: number): string {
  const h = source.toString('hex', offset, offset + 16)
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`
}
