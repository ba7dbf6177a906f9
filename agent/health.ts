// The agent's optional HTTP listener for probes and scraping: /healthz (the process answers),
// /readyz (at least one session to an edge is up) and /metrics (Prometheus text). Off unless
// `--admin host:port` is given; unauthenticated, so meant for loopback or a pod network. It
// renders what it is handed and changes nothing in the agent.
import type { AddressInfo } from 'node:net'
import { startSmallHttp } from '../shared/small-http.js'

export interface HealthOptions {
  host: string
  port: number
  ready(): boolean
  render?(): Promise<{ contentType: string; body: string }>
}

export interface HealthServer {
  address: AddressInfo
  close(): Promise<void>
}

export async function startHealthServer(opts: HealthOptions): Promise<HealthServer> {
  const { address, close } = await startSmallHttp(opts, (req, res) => {
    const path = new URL(req.url ?? '/', 'http://agent').pathname
    const reply = (status: number, type: string, body: string): void => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' })
      res.end(body)
    }
    if (req.method !== 'GET') return reply(405, 'text/plain', 'method not allowed\n')
    if (path === '/healthz') return reply(200, 'application/json', '{"ok":true}\n')
    if (path === '/readyz') {
      const ready = opts.ready()
      return reply(ready ? 200 : 503, 'application/json', JSON.stringify({ ready }) + '\n')
    }
    if (path === '/metrics' && opts.render) {
      opts.render().then(
        (m) => reply(200, m.contentType, m.body),
        () => reply(500, 'text/plain', 'metrics unavailable\n'),
      )
      return
    }
    reply(404, 'text/plain', 'not found\n')
  })
  return { address, close }
}
