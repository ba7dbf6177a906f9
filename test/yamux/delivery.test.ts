// How received payload reaches a stream's reader: once per event-loop turn, whatever pieces the
// transport cut it into (a TLS transport hands over 16 KiB records; a frame split across two is
// two pieces), never later than the turn it arrived in, always before the FIN or RST that
// followed it, and never credited to the peer's window before the reader has it. The transport
// here is a bare Duplex this test feeds chunk by chunk, so the cuts are exactly the ones chosen.
// A relay's reply written during delivery is flushed in the same turn, not one later.
import t from 'tap'
import { Duplex } from 'node:stream'
import { setImmediate as turn } from 'node:timers/promises'
import {
  Decoder,
  encodeFrame,
  Flag,
  FrameType,
  Session,
  type FrameHeader,
  type YamuxStream,
} from '../../shared/yamux/index.js'

interface Fed {
  session: Session
  /** Hands `bytes` to the session as one transport chunk (one 'data' event, synchronously). */
  feed(bytes: Buffer): void
  /** Window updates the session sent for `streamId`, summed. */
  credited(streamId: number): number
  /** Payload bytes the session sent on `streamId`. */
  sentBytes(streamId: number): number
}

function fedSession(): Fed {
  const sent: FrameHeader[] = []
  const decoder = new Decoder(
    {
      onFrame: (h) => sent.push(h),
      onDataStart: (h) => sent.push(h),
      onDataChunk: () => {},
      onDataEnd: () => {},
      onError: () => {},
    },
    2 ** 31 - 1,
  )
  const transport = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) {
      decoder.push(chunk)
      cb()
    },
  })
  const session = new Session(transport, { role: 'server', config: { keepAliveIntervalMs: 0 } })
  return {
    session,
    feed: (bytes) => void transport.push(bytes),
    credited: (id) =>
      sent
        .filter((h) => h.type === FrameType.WindowUpdate && h.streamId === id)
        .reduce((n, h) => n + h.length, 0),
    sentBytes: (id) =>
      sent
        .filter((h) => h.type === FrameType.Data && h.streamId === id)
        .reduce((n, h) => n + h.length, 0),
  }
}

const open = (id: number): Buffer =>
  encodeFrame({ type: FrameType.WindowUpdate, flags: Flag.SYN, streamId: id, length: 0 })
const data = (id: number, payload: Buffer, flags = 0): Buffer =>
  encodeFrame({ type: FrameType.Data, flags, streamId: id, length: payload.length }, payload)
/** `bytes` cut into transport chunks of `size` (the last shorter), ignoring frame bounds. */
const cut = (bytes: Buffer, size: number): Buffer[] => {
  const out: Buffer[] = []
  for (let i = 0; i < bytes.length; i += size) out.push(bytes.subarray(i, i + size))
  return out
}

async function accepted(f: Fed, id: number): Promise<YamuxStream> {
  f.feed(open(id))
  return f.session.accept()
}

t.test('pieces of one turn reach the reader as one chunk', async (tt) => {
  const f = fedSession()
  tt.teardown(() => f.session.close())
  const s = await accepted(f, 1)
  const chunks: Buffer[] = []
  s.on('data', (c: Buffer) => chunks.push(c))
  const a = Buffer.alloc(40_000, 1)
  const b = Buffer.alloc(30_000, 2)
  // As a TLS transport cuts it: 16 KiB records across both frames' bounds, one turn.
  const wire = Buffer.concat([data(1, a), data(1, b)])
  const pieces = cut(wire, 16_384)
  for (const p of pieces) f.feed(p)
  tt.equal(chunks.length, 0, 'nothing is pushed while the turn is still feeding')
  await turn()
  tt.equal(chunks.length, 1, `${pieces.length} transport chunks, 2 frames: one 'data' event`)
  tt.same(chunks[0], Buffer.concat([a, b]), 'in order, byte for byte')
})

t.test('each turn delivers its own bytes: nothing waits for a later one', async (tt) => {
  const f = fedSession()
  tt.teardown(() => f.session.close())
  const s = await accepted(f, 1)
  const chunks: string[] = []
  s.on('data', (c: Buffer) => chunks.push(c.toString()))
  const wire = data(1, Buffer.from('hello world'))
  f.feed(wire.subarray(0, 17)) // header and 'hello'
  await turn()
  tt.same(chunks, ['hello'], 'the first half is read before the rest arrives')
  f.feed(wire.subarray(17))
  await turn()
  tt.same(chunks, ['hello', ' world'])
})

t.test('bytes that arrived with a FIN are read before the end', async (tt) => {
  const f = fedSession()
  tt.teardown(() => f.session.close())
  const s = await accepted(f, 1)
  const events: string[] = []
  s.on('data', (c: Buffer) => events.push(`data:${c.length}`))
  s.on('end', () => events.push('end'))
  f.feed(data(1, Buffer.alloc(1000)))
  f.feed(data(1, Buffer.alloc(500), Flag.FIN))
  await turn()
  await turn()
  tt.same(events, ['data:1500', 'end'], 'all 1500 bytes, then the end')
})

t.test('bytes that arrived before an RST reach a flowing reader first', async (tt) => {
  const f = fedSession()
  tt.teardown(() => f.session.close())
  const s = await accepted(f, 1)
  const events: string[] = []
  s.on('data', (c: Buffer) => events.push(`data:${c.length}`))
  s.on('error', (err: Error & { code?: string }) => events.push(`error:${err.code}`))
  f.feed(data(1, Buffer.alloc(700)))
  f.feed(encodeFrame({ type: FrameType.WindowUpdate, flags: Flag.RST, streamId: 1, length: 0 }))
  await turn()
  await turn()
  tt.same(events, ['data:700', 'error:HOPGATE_ERR_YAMUX_STREAM_RESET'])
})

t.test('bytes a session closes on reach the reader before it is torn down', async (tt) => {
  const f = fedSession()
  const s = await accepted(f, 1)
  const got: number[] = []
  s.on('data', (c: Buffer) => got.push(c.length))
  s.on('error', () => {})
  await turn() // flowing from here on
  f.feed(data(1, Buffer.alloc(300)))
  f.session.close()
  tt.same(got, [300], 'pushed before the stream was aborted')
})

t.test('the window credits only what the reader took, not what waits in the turn', async (tt) => {
  const f = fedSession()
  tt.teardown(() => f.session.close())
  const s = await accepted(f, 1)
  // Paused reader: 64 KiB delivered and buffered, nothing read yet.
  f.feed(data(1, Buffer.alloc(64 * 1024, 1)))
  await turn()
  tt.equal(s.readableLength, 64 * 1024)
  // In one turn: 128 KiB more arrives, and the reader takes the first 64 KiB.
  f.feed(data(1, Buffer.alloc(128 * 1024, 2)))
  const first = s.read() as Buffer
  tt.equal(first.length, 64 * 1024)
  await turn()
  await turn()
  // 64 KiB consumed of a 256 KiB window: under the half-window threshold, so no update yet.
  // Counting the 128 KiB still in the turn's inbox as consumed would credit 192 KiB here.
  tt.equal(f.credited(1), 0, 'no credit for bytes the reader never had')
  tt.equal(s.readableLength, 128 * 1024, 'the second frame is buffered for the reader')
  const second = s.read() as Buffer
  tt.equal(second.length, 128 * 1024)
  await turn()
  // At least the 192 KiB consumed; more if auto-tuning grew the window on this fast reader.
  tt.ok(f.credited(1) >= 192 * 1024, `reading it credits all consumed (${f.credited(1)})`)
})

t.test('a reply written while payload is delivered goes out in that same turn', async (tt) => {
  const f = fedSession()
  tt.teardown(() => f.session.close())
  const s = await accepted(f, 1)
  // A relay: whatever arrives is written straight back.
  s.on('data', (c: Buffer) => s.write(c))
  await turn()
  f.feed(data(1, Buffer.from('ping')))
  // Delivery runs after this turn's I/O; a flush scheduled from there with setImmediate would
  // only run a turn later, after another poll for I/O.
  await turn()
  tt.equal(f.sentBytes(1), 4, 'the echo was handed to the transport before the next turn')
})
