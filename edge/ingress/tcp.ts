// Raw TCP ingress (for operators and the benchmark): a listen address mapped to one project's
// port (`--tcp 127.0.0.1:9000=<project>:<port>`). Each accepted connection becomes one tunnel
// stream through the shared opener; a refusal closes the connection, nothing else is touched.
import net from 'node:net'
import { once } from 'node:events'
import { HopgateError } from '../../shared/errors.js'
import { isProjectId } from '../../shared/tunnel/fields.js'
import { bridge } from '../../shared/tunnel/bridge.js'
import { EarlyData } from '../../shared/tunnel/early-data.js'
import type { StreamOpener } from '../tunnel/opener.js'

export interface TcpMapping {
  host: string
  port: number
  project: string
  projectPort: number
}

/** Parses `listenHost:listenPort=<project>:<port>`; throws HOPGATE_ERR_CONFIG_INVALID. */
export function parseTcpMapping(spec: string): TcpMapping {
  const m = /^(\[[0-9a-f:.]+\]|[^\s:=]+):(\d{1,5})=([0-9a-f-]{36}):(\d{1,5})$/.exec(spec)
  const project = m?.[3] ?? ''
  const port = Number(m?.[2])
  const projectPort = Number(m?.[4])
  if (!m || !isProjectId(project) || port > 65535 || projectPort < 1 || projectPort > 65535) {
    throw new HopgateError(
      'HOPGATE_ERR_CONFIG_INVALID',
      `--tcp wants host:port=<project uuid>:<port>, got ${spec}`,
    )
  }
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port, project, projectPort }
}

export interface TcpIngress {
  server: net.Server
  address: net.AddressInfo
  close(): Promise<void>
}

export async function startTcpIngress(
  mapping: TcpMapping,
  opener: StreamOpener,
  onError?: (err: unknown) => void,
): Promise<TcpIngress> {
  const sockets = new Set<net.Socket>()
  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
    socket.on('error', () => socket.destroy())
    const ac = new AbortController()
    // Only an open in progress needs aborting; after it, abort() would just build a DOMException.
    const abort = (): void => ac.abort()
    socket.once('close', abort)
    // The user's first bytes go right behind the header instead of waiting for the status.
    const early = new EarlyData(socket)
    opener
      .open({
        project: mapping.project,
        service: 'port',
        port: mapping.projectPort,
        clientAddress: `${socket.remoteAddress}:${socket.remotePort}`,
        signal: ac.signal,
        early,
      })
      .then(
        ({ stream }) => {
          socket.off('close', abort)
          const { ended } = early.commit()
          if (socket.destroyed) return void stream.destroy()
          bridge(stream, socket)
          // The user's FIN came before the status: the bridge will not see it again.
          if (ended) stream.end()
          socket.resume()
        },
        (err: unknown) => {
          early.release()
          onError?.(err)
          socket.destroy()
        },
      )
  })
  server.listen(mapping.port, mapping.host)
  await once(server, 'listening')
  return {
    server,
    address: server.address() as net.AddressInfo,
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
