// The lifecycle the small control-plane HTTP listeners share (the agent's health/metrics
// listener, the edge's discovery endpoint and admin API): listen, short keep-alive, and a close
// that does not wait out idle keep-alive sockets. What each one serves stays in its own module;
// user-facing HTTP ingress has its own tuned listener (edge/http/listener.ts).
import http from 'node:http'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'

export interface SmallHttpServer {
  server: http.Server
  address: AddressInfo
  /** Stops listening and drops every connection, idle or not; resolves once closed. */
  close: () => Promise<void>
}

/** Listens on host:port; rejects with the listen error (a taken port, say). */
export async function startSmallHttp(
  opts: { host: string; port: number },
  handler: http.RequestListener,
): Promise<SmallHttpServer> {
  const server = http.createServer(handler)
  // Keep-alive sockets would hold close() for their idle timeout; these endpoints are
  // low-volume (probes, scrapes, operators), so a short one costs nothing.
  server.keepAliveTimeout = 1000
  server.listen(opts.port, opts.host)
  await once(server, 'listening')
  return {
    server,
    address: server.address() as AddressInfo,
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      server.closeAllConnections()
      await closed
    },
  }
}
