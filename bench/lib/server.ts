// Child-process entry for the server end of one path: listens on loopback, runs the accepting mux
// (or none, for tls/tcp) and the sink/echo protocol, and answers the parent over IPC with its
// readiness and gc'd memory. Forked by procs.ts with --expose-gc; dies with its parent.
import type { Duplex } from 'node:stream'
import { listenLink, type Pki } from './links.js'
import { isMux, loadMux, type PathName } from './muxes.js'
import { serveStream } from './protocol.js'
import { memSnapshot, type Reply, type Request } from './procs.js'

let open = 0
function track(s: Duplex): void {
  open++
  s.once('close', () => open--)
  serveStream(s)
}

async function init(path: PathName, pki: Pki): Promise<number> {
  const kind = path === 'tcp' ? 'tcp' : 'tls'
  if (!isMux(path)) {
    const { port } = await listenLink(kind, pki, (sock) => track(sock))
    return port
  }
  const factory = await loadMux(path)
  const { port } = await listenLink(kind, pki, (sock) => {
    sock.on('error', () => sock.destroy())
    Promise.resolve(factory(sock, 'server'))
      .then((peer) => peer.onStream(track))
      .catch((err: unknown) => {
        process.stderr.write(`server ${path}: ${String(err)}\n`)
        sock.destroy()
      })
  })
  return port
}

function reply(msg: Reply): void {
  process.send?.(msg)
}

process.on('disconnect', () => process.exit(0))
process.on('message', (raw) => {
  const req = raw as Request
  const answer = async (): Promise<Reply> => {
    if (req.cmd === 'init') return { id: req.id, port: await init(req.path, req.pki) }
    if (req.cmd === 'mem') return { id: req.id, mem: memSnapshot(), streams: open }
    throw new Error(`unknown command ${req.cmd}`)
  }
  answer().then(reply, (err: unknown) => reply({ id: req.id, error: (err as Error).message }))
})
