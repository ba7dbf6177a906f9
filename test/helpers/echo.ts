// A project service stand-in for tunnel tests: a half-close-aware TCP echo on loopback, closed in
// teardown, and throwaway state directories removed in teardown.
import net from 'node:net'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TapTest } from './yamux-pair.js'

/** Starts an echo server on 127.0.0.1 and returns its port. */
export async function echoServer(tt: TapTest): Promise<number> {
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => {})
    s.pipe(s)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  tt.teardown(() => new Promise<void>((r) => server.close(() => r())))
  return (server.address() as net.AddressInfo).port
}

/** A fresh directory under the OS temp dir, removed when the test ends. */
export async function tempDir(tt: TapTest, prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `hopgate-${prefix}-`))
  tt.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}
