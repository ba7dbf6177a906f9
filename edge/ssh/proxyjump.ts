// ProxyJump mode (`ssh -J <account>@edge:2222 <user>@<project>`): a logged-in account may open
// direct-tcpip channels only to `<project>:22` of projects it collaborates on; each becomes a
// byte pipe to the project's sshd through the tunnel, which authenticates the user end to end.
// Sessions, other ports and remote forwarding are refused. Auth and limits are not here.
import type { Duplex } from 'node:stream'
import type { Connection } from 'ssh2'
import type { AccessStore } from '../auth/access-store.js'
import type { StreamOpener } from '../tunnel/opener.js'
import { bridge } from '../../shared/tunnel/bridge.js'
import { parseSshUsername } from './username.js'
import type { ErrorCode } from '../../shared/errors.js'
import { isHopgateError } from '../../shared/errors.js'

export interface ProxyJumpOptions {
  account: string
  access: AccessStore
  opener: StreamOpener
  clientAddress: string
  traceId: string
  onRefused: (code: ErrorCode, detail: Record<string, unknown>) => void
}

/** The project a jump target names (the same three forms as usernames), or undefined. */
export function jumpTarget(host: string, port: number): string | undefined {
  if (port !== 22) return undefined
  try {
    const u = parseSshUsername(host)
    return u.kind === 'project' ? u.project : undefined
  } catch {
    return undefined
  }
}

export function serveProxyJump(conn: Connection, o: ProxyJumpOptions): void {
  conn.on('session', (_accept, reject) => {
    o.onRefused('HOPGATE_ERR_SSH_FORWARD_REFUSED', { what: 'session in jump mode' })
    reject()
  })
  conn.on('request', (_accept, reject) => reject?.())
  const ac = new AbortController()
  conn.once('close', () => ac.abort())
  const open = async (project: string, accept: () => Duplex, reject: () => void): Promise<void> => {
    try {
      if (!(await o.access.isCollaborator(project, o.account))) {
        o.onRefused('HOPGATE_ERR_SSH_NO_ACCESS', { project })
        return reject()
      }
      const { stream } = await o.opener.open({
        project,
        service: 'ssh',
        clientAddress: o.clientAddress,
        traceId: o.traceId,
        signal: ac.signal,
      })
      if (ac.signal.aborted) return void stream.destroy()
      const ch = accept()
      bridge(stream, ch)
      ch.once('close', () => stream.destroy())
      stream.once('close', () => ch.destroy())
      stream.resume()
    } catch (err) {
      o.onRefused(isHopgateError(err) ? err.code : 'HOPGATE_ERR_INTERNAL', { project })
      reject()
    }
  }
  conn.on('tcpip', (accept, reject, info) => {
    const project = jumpTarget(info.destIP, info.destPort)
    if (!project) {
      o.onRefused('HOPGATE_ERR_SSH_FORWARD_REFUSED', { what: 'jump target' })
      return reject()
    }
    void open(project, accept, reject)
  })
}
