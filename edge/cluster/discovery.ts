// Discovery for agents (`hopgate agent run --discovery <url>`): a read-only HTTP endpoint,
// `GET /v1/edges`, listing the tunnel addresses of the live, non-draining edges from this edge's
// cached registry view. It serves nothing secret and decides no trust: an agent still verifies
// every edge it dials against the edge CA, so a forged list can only cost it a failed dial.
import type { AddressInfo } from 'node:net'
import { startSmallHttp } from '../../shared/small-http.js'
import type { EdgeRecord } from './registry.js'

export interface DiscoveryServer {
  address: AddressInfo
  close(): Promise<void>
}

export interface DiscoveryBody {
  edges: Array<{ edgeId: string; tunnelAddress: string }>
}

export function discoveryBody(edges: readonly EdgeRecord[]): DiscoveryBody {
  return {
    edges: edges
      .filter((e) => !e.draining)
      .map((e) => ({ edgeId: e.edgeId, tunnelAddress: e.tunnelAddress })),
  }
}

export async function startDiscovery(opts: {
  host: string
  port: number
  edges: () => readonly EdgeRecord[]
}): Promise<DiscoveryServer> {
  const { address, close } = await startSmallHttp(opts, (req, res) => {
    const path = new URL(req.url ?? '/', 'http://discovery').pathname
    const ok = req.method === 'GET' && path === '/v1/edges'
    const text = ok
      ? JSON.stringify(discoveryBody(opts.edges())) + '\n'
      : JSON.stringify({ error: { code: 'HOPGATE_ERR_ADMIN_NOT_FOUND', message: path } }) + '\n'
    res.writeHead(ok ? 200 : 404, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(text),
      'cache-control': 'no-store',
    })
    res.end(text)
  })
  return { address, close }
}
