// The bench's per-stream wire protocol and both of its ends. A stream opens with one mode byte:
// 'U' upload-sink (8-byte big-endian length, payload, server answers 'K' once all of it arrived),
// 'D' download (8-byte big-endian length, server sends that many bytes honouring backpressure)
// or 'E' echo (server writes back whatever it reads). Identical for mux streams and raw links.
import type { Duplex } from 'node:stream'

export const CHUNK = 64 * 1024
const PAYLOAD = Buffer.alloc(CHUNK, 0x5a)

function asBuffer(c: unknown): Buffer {
  if (Buffer.isBuffer(c)) return c
  if (c instanceof Uint8Array) return Buffer.from(c.buffer, c.byteOffset, c.byteLength)
  return Buffer.from(String(c))
}

/** Server side: run the mode the client picked until the client ends the stream. */
export function serveStream(s: Duplex): void {
  let mode = 0
  let header = Buffer.alloc(0)
  let want = -1
  let got = 0
  s.on('error', () => s.destroy())
  s.on('end', () => s.end())
  s.on('data', (raw: unknown) => {
    let c = asBuffer(raw)
    if (mode === 0) {
      mode = c[0] ?? 0
      c = c.subarray(1)
    }
    if (mode === 0x45 /* E */) {
      if (c.length > 0 && !s.write(c)) {
        s.pause()
        s.once('drain', () => s.resume())
      }
      return
    }
    if (want < 0) {
      header = Buffer.concat([header, c])
      if (header.length < 8) return
      want = Number(header.readBigUInt64BE(0))
      c = header.subarray(8)
      if (mode === 0x44 /* D */) {
        sendAll(s, want)
        return
      }
    }
    if (mode === 0x44) return
    got += c.length
    if (got >= want && want >= 0) {
      want = Number.MAX_SAFE_INTEGER // answer once
      s.write('K')
    }
  })
}

/** Server side of 'D': `total` bytes in CHUNK writes, waiting for 'drain' when told to. */
function sendAll(s: Duplex, total: number): void {
  let sent = 0
  const pump = () => {
    while (sent < total && !s.destroyed) {
      const n = Math.min(CHUNK, total - sent)
      sent += n
      if (!s.write(n === CHUNK ? PAYLOAD : PAYLOAD.subarray(0, n))) {
        s.once('drain', pump)
        return
      }
    }
  }
  pump()
}

/** Rejects if the stream dies before `pred` holds; resolves with the data seen so far. */
function readUntil(s: Duplex, pred: (total: number) => boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    let total = 0
    const done = (err?: Error) => {
      s.off('data', onData)
      s.off('error', done)
      s.off('close', onClose)
      if (err) reject(err)
      else resolve()
    }
    const onData = (c: Buffer) => {
      total += c.length
      if (pred(total)) done()
    }
    const onClose = () => done(new Error('stream closed early'))
    s.on('data', onData)
    s.once('error', done)
    s.once('close', onClose)
  })
}

function drained(s: Duplex): Promise<void> {
  return new Promise((resolve, reject) => {
    const fin = (err?: Error) => {
      s.off('drain', ok)
      s.off('error', fin)
      s.off('close', closed)
      if (err) reject(err)
      else resolve()
    }
    const ok = () => fin()
    const closed = () => fin(new Error('stream closed while writing'))
    s.once('drain', ok)
    s.once('error', fin)
    s.once('close', closed)
  })
}

/** Client side of 'U'. Returns [first byte written, ack received] in hrtime nanoseconds. */
export async function upload(s: Duplex, total: number): Promise<[bigint, bigint]> {
  const ack = readUntil(s, (n) => n >= 1)
  ack.catch(() => {}) // observed below; avoid an unhandled rejection while we are still writing
  const head = Buffer.alloc(9)
  head[0] = 0x55 /* U */
  head.writeBigUInt64BE(BigInt(total), 1)
  const start = process.hrtime.bigint()
  s.write(head)
  let sent = 0
  while (sent < total) {
    const n = Math.min(CHUNK, total - sent)
    sent += n
    if (!s.write(n === CHUNK ? PAYLOAD : PAYLOAD.subarray(0, n))) await drained(s)
  }
  await ack
  const end = process.hrtime.bigint()
  s.end()
  return [start, end]
}

/** Client side of 'D'. Returns [request written, last byte received] in hrtime nanoseconds. */
export async function download(s: Duplex, total: number): Promise<[bigint, bigint]> {
  const all = readUntil(s, (n) => n >= total)
  all.catch(() => {})
  const head = Buffer.alloc(9)
  head[0] = 0x44 /* D */
  head.writeBigUInt64BE(BigInt(total), 1)
  const start = process.hrtime.bigint()
  s.write(head)
  await all
  const end = process.hrtime.bigint()
  s.end()
  return [start, end]
}

/** Client side of 'E': 64-byte ping-pong; returns the timed round trips in microseconds. */
export async function pingPong(s: Duplex, warmup: number, count: number): Promise<Float64Array> {
  const msg = Buffer.alloc(64, 0x61)
  const out = new Float64Array(count)
  s.write('E')
  for (let i = -warmup; i < count; i++) {
    const back = readUntil(s, (n) => n >= 64)
    const t0 = process.hrtime.bigint()
    s.write(msg)
    await back
    if (i >= 0) out[i] = Number(process.hrtime.bigint() - t0) / 1000
  }
  s.end()
  return out
}

/** One open's worth of work: 'E' plus one byte, wait for the echo. Leaves the stream open. */
export async function echoOne(s: Duplex): Promise<void> {
  const back = readUntil(s, (n) => n >= 1)
  s.write('E!')
  await back
}
