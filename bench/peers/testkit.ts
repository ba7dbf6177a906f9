// Small helpers shared by the peer self-check and the yamux compat tests: a TCP loopback pair,
// hashed bulk send/receive with backpressure, and "read until end".
import { createHash, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import net from 'node:net'
import type { Duplex } from 'node:stream'

export interface TransportPair {
  /** client/dialer side */
  a: Duplex
  /** server/accepting side */
  b: Duplex
  close(): Promise<void>
}

/** A connected TCP loopback pair (a = dialer). close() destroys both sockets and the listener. */
export async function tcpPair(): Promise<TransportPair> {
  const server = net.createServer({ allowHalfOpen: true, noDelay: true })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as net.AddressInfo
  const accepted = once(server, 'connection') as Promise<[net.Socket]>
  const a = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true, noDelay: true })
  await once(a, 'connect')
  const [b] = await accepted
  return {
    a,
    b,
    async close() {
      a.destroy()
      b.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

/**
 * Write `total` random bytes in `chunkSize` writes, honouring write() backpressure, then end()
 * (unless keepOpen). Resolves with the SHA-256 (hex) of what was written.
 */
export async function sendBytes(
  d: Duplex,
  total: number,
  opts: { chunkSize?: number; keepOpen?: boolean } = {},
): Promise<string> {
  const chunkSize = opts.chunkSize ?? 64 * 1024
  const hash = createHash('sha256')
  // one random pool, sliced at shifting offsets: cheap, and any reordering changes the hash
  const pool = randomBytes(chunkSize * 2)
  let sent = 0
  let i = 0
  while (sent < total) {
    if (d.destroyed) throw new Error(`stream destroyed after ${sent} of ${total} bytes`)
    const n = Math.min(chunkSize, total - sent)
    const off = (i++ * 7919) % chunkSize
    const chunk = Buffer.from(pool.subarray(off, off + n))
    hash.update(chunk)
    sent += n
    if (!d.write(chunk)) await waitDrain(d)
  }
  if (opts.keepOpen !== true) d.end()
  return hash.digest('hex')
}

function waitDrain(d: Duplex): Promise<void> {
  return new Promise((resolve, reject) => {
    const cleanup = (): void => {
      d.off('drain', onDrain)
      d.off('close', onClose)
      d.off('error', onError)
    }
    const onDrain = (): void => {
      cleanup()
      resolve()
    }
    const onClose = (): void => {
      cleanup()
      reject(new Error('stream closed while waiting for drain'))
    }
    const onError = (err: Error): void => {
      cleanup()
      reject(err)
    }
    d.on('drain', onDrain)
    d.on('close', onClose)
    d.on('error', onError)
  })
}

/** Read until 'end'; resolves with byte count and SHA-256 (hex). Rejects on error/premature close. */
export function recvBytes(
  d: Duplex,
  opts: { pauseFirstMs?: number } = {},
): Promise<{ bytes: number; sha256: string }> {
  const hash = createHash('sha256')
  let bytes = 0
  return new Promise((resolve, reject) => {
    let ended = false
    const start = (): void => {
      d.on('data', (c: Buffer) => {
        bytes += c.length
        hash.update(c)
      })
      d.resume() // a 'data' listener does not restart a stream that was explicitly paused
    }
    d.once('end', () => {
      ended = true
      resolve({ bytes, sha256: hash.digest('hex') })
    })
    d.once('error', reject)
    d.once('close', () => {
      if (!ended) reject(new Error(`stream closed without end after ${bytes} bytes`))
    })
    if (opts.pauseFirstMs !== undefined) {
      d.pause()
      setTimeout(start, opts.pauseFirstMs)
    } else {
      start()
    }
  })
}

/**
 * Concatenate everything read until 'end'. Not `for await`: Node's async iterator destroy()s the
 * stream when iteration finishes, which on a half-open yamux stream means RST of our write side.
 */
export function readAll(d: Duplex): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = []
    let ended = false
    d.on('data', (c: Buffer) => parts.push(c))
    d.once('end', () => {
      ended = true
      resolve(Buffer.concat(parts))
    })
    d.once('error', reject)
    d.once('close', () => {
      if (!ended) reject(new Error('stream closed without end'))
    })
    d.resume()
  })
}

/** Read exactly n bytes (or reject on end/error first). Leaves the stream paused afterwards. */
export function readExactly(d: Duplex, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = []
    let got = 0
    const cleanup = (): void => {
      d.off('data', onData)
      d.off('end', onEnd)
      d.off('error', onError)
    }
    const onData = (c: Buffer): void => {
      parts.push(c)
      got += c.length
      if (got >= n) {
        cleanup()
        d.pause()
        const all = Buffer.concat(parts)
        if (all.length > n) d.unshift(all.subarray(n))
        resolve(all.subarray(0, n))
      }
    }
    const onEnd = (): void => {
      cleanup()
      reject(new Error(`ended after ${got} of ${n} bytes`))
    }
    const onError = (err: Error): void => {
      cleanup()
      reject(err)
    }
    d.on('data', onData)
    d.once('end', onEnd)
    d.once('error', onError)
    d.resume()
  })
}

/** Resolve with the first 'error' the stream emits, or reject if it closes cleanly / times out. */
export function nextError(d: Duplex, ms = 5000): Promise<Error & { code?: string }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no error within ${ms} ms`)), ms)
    d.once('error', (err: Error) => {
      clearTimeout(timer)
      resolve(err)
    })
    d.once('close', () => {
      // 'error' is emitted before 'close'; give it the same tick to arrive
      setImmediate(() => {
        clearTimeout(timer)
        reject(new Error('closed without error'))
      })
    })
  })
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
