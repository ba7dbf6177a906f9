// Shared set-up for the cluster tests: N edge state directories that share one runner CA and one
// edge CA (as operators set them up: copy the two CAs, `hopgate ca init --edge-id`), tagged TCP
// servers (the reply says which runner's target answered) and a TCP round trip;
// enrollment, the agent report and polling are test/helpers' (re-exported here).
import net from 'node:net'
import { once } from 'node:events'
import { copyFile, mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { initCa } from '../../certs/pki.js'
import { tempDir } from '../helpers/echo.js'
import type { TapTest } from '../helpers/yamux-pair.js'

export { GiB, enroll, report } from '../helpers/runner.js'
export { until } from '../helpers/until.js'

/** State dirs for edges `ids`, the first holding the CAs, the others copies of both CAs. */
export async function clusterStateDirs(tt: TapTest, ids: string[]): Promise<string[]> {
  const dirs: string[] = []
  for (const id of ids) {
    const dir = await tempDir(tt, id)
    if (dirs.length > 0) {
      await mkdir(join(dir, 'pki'), { recursive: true, mode: 0o700 })
      for (const f of ['runner-ca.key', 'runner-ca.crt', 'edge-ca.key', 'edge-ca.crt']) {
        await copyFile(join(dirs[0]!, 'pki', f), join(dir, 'pki', f))
      }
    }
    await initCa(dir, { edgeId: id })
    dirs.push(dir)
  }
  return dirs
}

/** A TCP server answering `tag:` + whatever it was sent, then closing; returns its port. */
export async function taggedServer(
  tt: TapTest,
  tag: string,
  host = '127.0.0.1',
  port = 0,
): Promise<number> {
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => {})
    s.write(`${tag}:`)
    s.pipe(s)
  })
  server.listen(port, host)
  await once(server, 'listening')
  tt.teardown(() => new Promise<void>((r) => server.close(() => r())))
  return (server.address() as net.AddressInfo).port
}

/** Sends `msg` to 127.0.0.1:port, half-closes, and resolves with the whole reply. */
export function roundTrip(port: number, msg: string, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true })
    const chunks: Buffer[] = []
    const timer = setTimeout(() => c.destroy(new Error('round trip timed out')), timeoutMs)
    c.on('data', (d: Buffer) => chunks.push(d))
    c.once('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
    c.once('end', () => {
      clearTimeout(timer)
      c.end()
      resolve(Buffer.concat(chunks).toString())
    })
    c.once('connect', () => c.end(msg))
  })
}
