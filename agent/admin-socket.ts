// The agent's local admin socket: a unix socket in the agent's state dir (mode 0600, in a 0700
// directory) speaking JSON lines, one request and one answer per line. It changes the target
// registry at runtime (`hopgate agent project add|remove|list`); it owns no registry policy (the
// registry validates, default deny stays) and tells no edge anything itself (agent.ts does).
import net from 'node:net'
import { once } from 'node:events'
import { chmod, unlink } from 'node:fs/promises'
import { z } from 'zod'
import { HopgateError, isHopgateError, ERROR_CATALOG, type ErrorCode } from '../shared/errors.js'
import { agentPath } from '../certs/state.js'

/** One request line is a project id and a few ports; anything longer is refused. */
export const MAX_ADMIN_LINE_BYTES = 64 * 1024

export const ADMIN_SOCKET_NAME = 'admin.sock'

export function adminSocketPath(stateDir: string): string {
  return agentPath(stateDir, ADMIN_SOCKET_NAME)
}

export const adminRequestSchema = z.discriminatedUnion('op', [
  z.object({ op: z.literal('add'), project: z.string(), targets: z.unknown() }).strict(),
  z.object({ op: z.literal('remove'), project: z.string() }).strict(),
  z.object({ op: z.literal('list') }).strict(),
])
export type AdminRequest = z.infer<typeof adminRequestSchema>

export type AdminAnswer =
  { ok: true; [k: string]: unknown } | { ok: false; error: { code: string; message: string } }

export interface AdminSocket {
  path: string
  close(): Promise<void>
}

/** Listens on `path` and answers each line with `handle`'s result or its typed error. */
export async function startAdminSocket(
  path: string,
  handle: (req: AdminRequest) => Promise<Record<string, unknown>>,
): Promise<AdminSocket> {
  // A socket file left by a killed agent would make listen fail with EADDRINUSE.
  await unlink(path).catch(() => {})
  const conns = new Set<net.Socket>()
  const server = net.createServer((socket) => {
    conns.add(socket)
    socket.once('close', () => conns.delete(socket))
    socket.on('error', () => {})
    let buffered = ''
    let chain = Promise.resolve()
    socket.setEncoding('utf8')
    const onData = (chunk: string): void => {
      buffered += chunk
      if (buffered.length > MAX_ADMIN_LINE_BYTES) {
        // Answer once, then stop buffering: the rest of an oversized line is read and dropped.
        buffered = ''
        socket.off('data', onData)
        socket.resume()
        const e = new HopgateError('HOPGATE_ERR_AGENT_ADMIN_BAD_REQUEST', 'line too long')
        socket.end(JSON.stringify(errorAnswer(e)) + '\n')
        return
      }
      let nl: number
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl)
        buffered = buffered.slice(nl + 1)
        chain = chain.then(async () => {
          const answer = await answer1(line, handle)
          if (!socket.destroyed) socket.write(JSON.stringify(answer) + '\n')
        })
      }
    }
    socket.on('data', onData)
  })
  server.listen(path)
  await once(server, 'listening')
  await chmod(path, 0o600)
  return {
    path,
    close: async () => {
      for (const c of conns) c.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      await unlink(path).catch(() => {})
    },
  }
}

async function answer1(
  line: string,
  handle: (req: AdminRequest) => Promise<Record<string, unknown>>,
): Promise<AdminAnswer> {
  try {
    let value: unknown
    try {
      value = JSON.parse(line)
    } catch {
      throw new HopgateError('HOPGATE_ERR_AGENT_ADMIN_BAD_REQUEST', 'not JSON')
    }
    const parsed = adminRequestSchema.safeParse(value)
    if (!parsed.success) {
      const why = parsed.error.issues.map((i) => `${i.path.join('.') || 'op'}: ${i.message}`)
      throw new HopgateError('HOPGATE_ERR_AGENT_ADMIN_BAD_REQUEST', why.join('; '))
    }
    return { ok: true, ...(await handle(parsed.data)) }
  } catch (err) {
    return errorAnswer(err)
  }
}

function errorAnswer(err: unknown): AdminAnswer {
  const e = isHopgateError(err) ? err : new HopgateError('HOPGATE_ERR_INTERNAL')
  return { ok: false, error: { code: e.code, message: e.message } }
}

/** One request to a running agent; its typed refusal comes back as the same HopgateError code. */
export async function callAdminSocket(
  path: string,
  req: AdminRequest,
  timeoutMs = 10_000,
): Promise<Record<string, unknown>> {
  const socket = net.connect(path)
  socket.setEncoding('utf8')
  try {
    const line = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer in ${timeoutMs} ms`)), timeoutMs)
      let got = ''
      socket.once('error', (err) => (clearTimeout(timer), reject(err)))
      socket.on('data', (chunk: string) => {
        got += chunk
        const nl = got.indexOf('\n')
        if (nl < 0) return
        clearTimeout(timer)
        resolve(got.slice(0, nl))
      })
      socket.once('end', () => (clearTimeout(timer), reject(new Error('closed without answer'))))
      socket.write(JSON.stringify(req) + '\n')
    })
    const answer = JSON.parse(line) as AdminAnswer
    if (answer.ok) return answer
    const code = answer.error.code
    // The agent's text already starts with the catalogue summary: it goes in as the cause.
    if (code in ERROR_CATALOG)
      throw new HopgateError(code as ErrorCode, undefined, {
        cause: new Error(answer.error.message),
      })
    throw new HopgateError('HOPGATE_ERR_AGENT_ADMIN_BAD_REQUEST', answer.error.message)
  } catch (err) {
    if (isHopgateError(err)) throw err
    throw new HopgateError(
      'HOPGATE_ERR_AGENT_ADMIN_UNREACHABLE',
      `${path}: ${(err as Error).message}`,
      {
        cause: err,
      },
    )
  } finally {
    socket.destroy()
  }
}
