// Raw HTTP/1.1 over a TCP socket for the tests that need bytes no client library would send:
// send exact bytes, read until the edge closes, and split what came back into responses
// (Content-Length or chunked bodies).
import net from 'node:net'
import { once } from 'node:events'

export interface RawResponse {
  status: number
  headers: Array<[string, string]>
  body: string
  /** False when the connection ended inside this response. */
  complete: boolean
}

export function headerOf(r: RawResponse, name: string): string | undefined {
  return r.headers.find(([k]) => k.toLowerCase() === name)?.[1]
}

/**
 * Sends `data` and resolves with what came back once the server closed the connection, or once
 * `responses` complete responses arrived (then the client closes).
 */
export async function exchange(
  addr: string,
  data: string | Buffer,
  responses = Infinity,
): Promise<Buffer> {
  const [host, port] = addr.split(':') as [string, string]
  const sock = net.connect(Number(port), host)
  sock.on('error', () => {})
  await once(sock, 'connect')
  const chunks: Buffer[] = []
  const closed = once(sock, 'close')
  sock.on('data', (c: Buffer) => {
    chunks.push(c)
    const parsed = parseResponses(Buffer.concat(chunks))
    if (parsed.length >= responses && parsed.every((r) => r.complete)) sock.destroy()
  })
  sock.write(data)
  await closed
  return Buffer.concat(chunks)
}

export function parseResponses(buf: Buffer): RawResponse[] {
  const out: RawResponse[] = []
  let text = buf.toString('latin1')
  while (text.length > 0) {
    const end = text.indexOf('\r\n\r\n')
    if (end < 0) break
    const lines = text.slice(0, end).split('\r\n')
    const status = Number(lines[0]!.split(' ')[1])
    const headers = lines.slice(1).map((l) => {
      const i = l.indexOf(':')
      return [l.slice(0, i).trim(), l.slice(i + 1).trim()] as [string, string]
    })
    text = text.slice(end + 4)
    const r: RawResponse = { status, headers, body: '', complete: true }
    const cl = headerOf(r, 'content-length')
    const te = headerOf(r, 'transfer-encoding')
    if (te?.toLowerCase() === 'chunked') {
      let body = ''
      for (;;) {
        const nl = text.indexOf('\r\n')
        if (nl < 0) {
          r.complete = false
          break
        }
        const size = parseInt(text.slice(0, nl), 16)
        text = text.slice(nl + 2)
        if (size === 0) {
          text = text.slice(text.indexOf('\r\n') + 2)
          break
        }
        body += text.slice(0, size)
        text = text.slice(size + 2)
      }
      r.body = body
    } else if (cl !== undefined) {
      r.complete = text.length >= Number(cl)
      r.body = text.slice(0, Number(cl))
      text = text.slice(Number(cl))
    } else if (status >= 200 && status !== 204 && status !== 304) {
      r.complete = false
      r.body = text
      text = ''
    }
    out.push(r)
  }
  return out
}

/** One GET-like request line and headers, CRLF-terminated. */
export function request(method: string, target: string, headers: Array<[string, string]>): string {
  return `${method} ${target} HTTP/1.1\r\n${headers.map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`
}
