// What a refused or failed HTTP request gets back: the typed error's status, its stable code, and
// the catalogue's summary (never the instance detail, which may name runners or internals), as
// JSON for `Accept: application/json` and as a small HTML page otherwise. 503s carry Retry-After.
// Serialises for a ServerResponse and for a raw socket (refused upgrades); decides nothing else.
import type { ServerResponse } from 'node:http'
import { STATUS_CODES } from 'node:http'
import type { Duplex } from 'node:stream'
import { ERROR_CATALOG, isHopgateError, type ErrorCode } from '../../shared/errors.js'

/** Seconds a 503 asks the client to wait: about one heartbeat plus a reconnect. */
export const RETRY_AFTER_S = 5

export interface ErrorReply {
  status: number
  code: ErrorCode
  headers: Record<string, string>
  body: string
}

export function errorReply(err: unknown, accept: string | undefined): ErrorReply {
  const code: ErrorCode = isHopgateError(err) && err.httpStatus ? err.code : 'HOPGATE_ERR_INTERNAL'
  const status = (ERROR_CATALOG[code] as { httpStatus?: number }).httpStatus ?? 500
  const message = ERROR_CATALOG[code].message
  const json = /\bapplication\/(?:[a-z.+-]*\+)?json\b/i.test(accept ?? '')
  const body = json
    ? JSON.stringify({ error: { code, status, message } }) + '\n'
    : htmlPage(status, code, message)
  const headers: Record<string, string> = {
    'content-type': json ? 'application/json; charset=utf-8' : 'text/html; charset=utf-8',
    'content-length': String(Buffer.byteLength(body)),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    'x-hopgate-error': code,
  }
  if (status === 503) headers['retry-after'] = String(RETRY_AFTER_S)
  if (status === 401) headers['www-authenticate'] = 'Bearer realm="hopgate"'
  return { status, code, headers, body }
}

function htmlPage(status: number, code: string, message: string): string {
  const title = `${status} ${STATUS_CODES[status] ?? 'Error'}`
  return [
    '<!doctype html>',
    '<html><head><meta charset="utf-8"><title>' + title + '</title></head>',
    '<body style="font-family:sans-serif;max-width:40em;margin:3em auto">',
    `<h1>${title}</h1>`,
    `<p>${message}.</p>`,
    `<p><small>hopgate <code>${code}</code></small></p>`,
    '</body></html>',
    '',
  ].join('\n')
}

/** Answers on a ServerResponse, or destroys it if the upstream's headers already went out. */
export function sendError(
  res: ServerResponse,
  err: unknown,
  accept: string | undefined,
): ErrorReply {
  const reply = errorReply(err, accept)
  if (res.headersSent) {
    res.destroy()
    return reply
  }
  res.writeHead(reply.status, reply.headers)
  res.end(reply.body)
  return reply
}

/** Answers on a raw socket (an upgrade request) and closes it. */
export function sendRawError(socket: Duplex, err: unknown, accept: string | undefined): ErrorReply {
  const reply = errorReply(err, accept)
  if (socket.writable) {
    let head = `HTTP/1.1 ${reply.status} ${STATUS_CODES[reply.status] ?? 'Error'}\r\n`
    for (const [k, v] of Object.entries(reply.headers)) head += `${k}: ${v}\r\n`
    socket.end(head + 'connection: close\r\n\r\n' + reply.body)
  } else {
    socket.destroy()
  }
  return reply
}
