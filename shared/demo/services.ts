// The demo project's services, as a real project on a runner would run them: a TCP echo server
// and one HTTP server whose `GET /` answers a small page naming the project and the runner, and
// whose `/ws` is a WebSocket echo (the `ws` package). Both listen on loopback, on free ports; the
// agent's registry lists them as the project's allowed ports, so the edge reaches them only
// through the tunnel and the agent dials nothing else.
import net from 'node:net'
import http from 'node:http'
import { once } from 'node:events'
import { WebSocketServer } from 'ws'
import type { Logger } from '../log.js'

const HOST = '127.0.0.1'

export interface DemoServicesOptions {
  project: string
  /** Named on the page; set once the hosting agent is enrolled (the servers start before). */
  runner: () => string
  log: Logger
}

export interface DemoServices {
  tcpEchoPort: number
  httpPort: number
  close(): Promise<void>
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}

/** The page `GET /` answers; it names the project and the runner serving it. */
export function demoPage(project: string, runner: string): string {
  const p = escapeHtml(project)
  const r = escapeHtml(runner)
  return [
    '<!doctype html>',
    '<html><head><meta charset="utf-8"><title>hopgate demo</title></head><body>',
    '<h1>hopgate demo</h1>',
    `<p>project <code id="project">${p}</code> on runner <code id="runner">${r}</code></p>`,
    '<p>This page came through the edge, a yamux stream over mutual TLS, and the agent.</p>',
    '<p><code>/ws</code> is a WebSocket echo: <output id="ws">connecting...</output></p>',
    // Relative to wherever the page is served (raw TCP port, or /{project}/server/{port}/), so
    // the same page exercises the WebSocket path of each ingress; no external scripts.
    '<script>',
    "const u = new URL('ws', location.href.split('?')[0].replace(/\\/?$/, '/'));",
    "u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';",
    'const ws = new WebSocket(u);',
    "const out = document.getElementById('ws');",
    "ws.onopen = () => ws.send('hello hopgate');",
    "ws.onmessage = (m) => { out.textContent = 'echo: ' + m.data; ws.close(); };",
    "ws.onerror = () => { out.textContent = 'WebSocket failed'; };",
    '</script>',
    '</body></html>',
    '',
  ].join('\n')
}

async function listen(server: net.Server): Promise<number> {
  server.listen(0, HOST)
  await once(server, 'listening')
  return (server.address() as net.AddressInfo).port
}

export async function startDemoServices(opts: DemoServicesOptions): Promise<DemoServices> {
  const { log } = opts
  const sockets = new Set<net.Socket>()
  const track = (s: net.Socket): void => {
    sockets.add(s)
    s.once('close', () => sockets.delete(s))
    s.on('error', (err) => log.debug({ err }, 'demo service connection error'))
  }

  const echo = net.createServer({ allowHalfOpen: true }, (sock) => {
    track(sock)
    sock.pipe(sock)
  })

  const web = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end()
      return
    }
    if (path === '/') {
      const body = demoPage(opts.project, opts.runner())
      res.writeHead(200, {
        'content-type': 'text/html; charset=utf-8',
        'content-length': Buffer.byteLength(body),
      })
      res.end(req.method === 'HEAD' ? undefined : body)
      return
    }
    if (path === '/ws') {
      res.writeHead(426, { upgrade: 'websocket', 'content-type': 'text/plain' })
      res.end('this is a WebSocket echo: connect with Upgrade: websocket\n')
      return
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n')
  })
  web.on('connection', track)
  const wss = new WebSocketServer({ noServer: true, maxPayload: 1024 * 1024 })
  wss.on('connection', (ws) => {
    ws.on('error', (err) => log.debug({ err }, 'demo websocket error'))
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }))
  })
  web.on('upgrade', (req, socket, head) => {
    if ((req.url ?? '').split('?')[0] !== '/ws') {
      socket.end('HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 0\r\n\r\n')
      return
    }
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req))
  })

  const servers: net.Server[] = [echo, web]
  const close = async (): Promise<void> => {
    for (const client of wss.clients) client.terminate()
    wss.close()
    const closed = servers.map(
      (s) => new Promise<void>((resolve) => (s.listening ? s.close(() => resolve()) : resolve())),
    )
    for (const s of sockets) s.destroy()
    await Promise.all(closed)
  }
  try {
    const tcpEchoPort = await listen(echo)
    const httpPort = await listen(web)
    log.debug({ tcpEchoPort, httpPort }, 'demo services listening')
    return { tcpEchoPort, httpPort, close }
  } catch (err) {
    await close()
    throw err
  }
}
