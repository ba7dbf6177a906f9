// The pure codec: hex fixtures for each frame type, every defined decode error, and fast-check
// properties (any chunking decodes the same; arbitrary bytes never throw or over-allocate).
import t from 'tap'
import fc from 'fast-check'
import {
  Decoder,
  decodeFrames,
  encodeFrame,
  encodeHeader,
  Flag,
  FrameType,
  GoAwayCode,
  type FrameHeader,
} from '../../shared/yamux/index.js'
import { ERROR_CATALOG } from '../../shared/errors.js'

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex')

t.test('header fixtures (spec: big-endian version, type, flags, id, length)', async (tt) => {
  const cases: Array<[string, Buffer]> = [
    ['00 00 0001 00000001 00000005', encodeHeader(FrameType.Data, Flag.SYN, 1, 5)],
    ['00 01 0002 00000002 00040000', encodeHeader(FrameType.WindowUpdate, Flag.ACK, 2, 262144)],
    ['00 01 0004 00000003 00000000', encodeHeader(FrameType.WindowUpdate, Flag.FIN, 3, 0)],
    ['00 01 0008 fffffffe 00000000', encodeHeader(FrameType.WindowUpdate, Flag.RST, 0xfffffffe, 0)],
    ['00 02 0001 00000000 deadbeef', encodeHeader(FrameType.Ping, Flag.SYN, 0, 0xdeadbeef)],
    ['00 02 0002 00000000 deadbeef', encodeHeader(FrameType.Ping, Flag.ACK, 0, 0xdeadbeef)],
    [
      '00 03 0000 00000000 00000001',
      encodeHeader(FrameType.GoAway, 0, 0, GoAwayCode.ProtocolError),
    ],
  ]
  for (const [want, got] of cases) tt.equal(got.toString('hex'), hex(want).toString('hex'), want)
})

t.test('decodes a data frame with SYN|FIN and its payload', async (tt) => {
  const { frames, error, partial } = decodeFrames(hex('00 00 0005 00000007 00000003 616263'))
  tt.equal(error, undefined)
  tt.equal(partial, false)
  tt.equal(frames.length, 1)
  tt.same(frames[0]!.header, { version: 0, type: 0, flags: 5, streamId: 7, length: 3 })
  tt.equal(String(frames[0]!.payload), 'abc')
})

t.test('every invalid header gives its defined error', async (tt) => {
  const cases: Array<[string, string, keyof typeof ERROR_CATALOG]> = [
    ['version 1', '01 00 0000 00000001 00000000', 'HOPGATE_ERR_YAMUX_BAD_VERSION'],
    ['type 4', '00 04 0000 00000001 00000000', 'HOPGATE_ERR_YAMUX_BAD_TYPE'],
    ['type 255', '00 ff 0000 00000001 00000000', 'HOPGATE_ERR_YAMUX_BAD_TYPE'],
    ['unknown flag', '00 01 0010 00000001 00000000', 'HOPGATE_ERR_YAMUX_BAD_FLAGS'],
    ['ping without SYN/ACK', '00 02 0000 00000000 00000001', 'HOPGATE_ERR_YAMUX_BAD_FLAGS'],
    ['ping on a stream', '00 02 0001 00000001 00000001', 'HOPGATE_ERR_YAMUX_BAD_STREAM_ID'],
    ['goaway on a stream', '00 03 0000 00000003 00000000', 'HOPGATE_ERR_YAMUX_BAD_STREAM_ID'],
    ['data on stream 0', '00 00 0000 00000000 00000001 ff', 'HOPGATE_ERR_YAMUX_BAD_STREAM_ID'],
    [
      'window update on stream 0',
      '00 01 0000 00000000 00000001',
      'HOPGATE_ERR_YAMUX_BAD_STREAM_ID',
    ],
    [
      'data longer than any window',
      '00 00 0000 00000001 ffffffff',
      'HOPGATE_ERR_YAMUX_FRAME_TOO_LARGE',
    ],
  ]
  for (const [name, bytes, code] of cases) {
    const { error } = decodeFrames(hex(bytes), 16 * 1024 * 1024)
    tt.equal(error?.code, code, name)
    tt.equal(error?.goAway, 1, `${name}: answered with GoAway(protocol error)`)
  }
})

t.test('an oversized data header fails at once, before any payload arrives', async (tt) => {
  let chunks = 0
  let failed: string | undefined
  const d = new Decoder(
    {
      onFrame: () => {},
      onDataStart: () => {},
      onDataChunk: () => chunks++,
      onDataEnd: () => {},
      onError: (e) => (failed = e.code),
    },
    1024,
  )
  d.push(hex('00 00 0000 00000001 00000401'))
  tt.equal(failed, 'HOPGATE_ERR_YAMUX_FRAME_TOO_LARGE')
  d.push(Buffer.alloc(2048))
  tt.equal(chunks, 0, 'input after the error is ignored')
})

const headerArb = fc.oneof(
  fc.record({
    type: fc.constant(FrameType.Data),
    flags: fc.integer({ min: 0, max: 15 }),
    streamId: fc.integer({ min: 1, max: 0xffffffff }),
    payload: fc.uint8Array({ maxLength: 300 }),
  }),
  fc.record({
    type: fc.constant(FrameType.WindowUpdate),
    flags: fc.integer({ min: 0, max: 15 }),
    streamId: fc.integer({ min: 1, max: 0xffffffff }),
    length: fc.integer({ min: 0, max: 0xffffffff }),
  }),
  fc.record({
    type: fc.constant(FrameType.Ping),
    flags: fc.constantFrom(1, 2, 3),
    streamId: fc.constant(0),
    length: fc.integer({ min: 0, max: 0xffffffff }),
  }),
  fc.record({
    type: fc.constant(FrameType.GoAway),
    flags: fc.constant(0),
    streamId: fc.constant(0),
    length: fc.integer({ min: 0, max: 2 }),
  }),
)

function chunkAt(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b)
  const out: Buffer[] = []
  let last = 0
  for (const p of points) {
    out.push(bytes.subarray(last, p))
    last = p
  }
  out.push(bytes.subarray(last))
  return out
}

function decodeChunks(chunks: Buffer[], max = 2 ** 31 - 1) {
  const frames: Array<{ header: FrameHeader; payload: Buffer }> = []
  let pieces: Buffer[] = []
  let error: string | undefined
  const d = new Decoder(
    {
      onFrame: (header) => frames.push({ header, payload: Buffer.alloc(0) }),
      onDataStart: () => (pieces = []),
      onDataChunk: (_h, c) => pieces.push(c),
      onDataEnd: (header) => frames.push({ header, payload: Buffer.concat(pieces) }),
      onError: (e) => (error = e.code),
    },
    max,
  )
  for (const c of chunks) d.push(c)
  return { frames, error, atBoundary: d.atFrameBoundary }
}

t.test('property: any chunking of valid frames decodes to the same frames', async (tt) => {
  fc.assert(
    fc.property(
      fc.array(headerArb, { maxLength: 20 }),
      fc.array(fc.nat(), { maxLength: 30 }),
      (specs, cuts) => {
        const encoded = specs.map((s) =>
          'payload' in s
            ? encodeFrame(
                { type: s.type, flags: s.flags, streamId: s.streamId, length: 0 },
                Buffer.from(s.payload),
              )
            : encodeFrame(s),
        )
        const bytes = Buffer.concat(encoded)
        const whole = decodeChunks([bytes])
        const split = decodeChunks(chunkAt(bytes, cuts))
        if (whole.error || split.error) return false
        if (!split.atBoundary || split.frames.length !== specs.length) return false
        return specs.every((s, i) => {
          const f = split.frames[i]!
          const w = whole.frames[i]!
          const sameAsWhole =
            f.header.type === w.header.type &&
            f.header.flags === w.header.flags &&
            f.header.streamId === w.header.streamId &&
            f.header.length === w.header.length &&
            f.payload.equals(w.payload)
          const sameAsSpec =
            'payload' in s ? f.payload.equals(Buffer.from(s.payload)) : f.header.length === s.length
          return sameAsWhole && sameAsSpec && f.header.streamId === s.streamId
        })
      },
    ),
    { numRuns: 500 },
  )
  tt.pass('500 random frame sequences, randomly chunked')
})

t.test('property: arbitrary bytes never throw, never over-allocate', async (tt) => {
  const known = new Set(Object.keys(ERROR_CATALOG))
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 2000 }),
      fc.array(fc.nat(), { maxLength: 10 }),
      (raw, cuts) => {
        const bytes = Buffer.from(raw)
        const max = 4096
        const r = decodeChunks(chunkAt(bytes, cuts), max)
        if (r.error !== undefined && !known.has(r.error)) return false
        // Payload is handed out as slices of the input: never more bytes than came in, and no
        // frame larger than the limit is ever started.
        const out = r.frames.reduce((n, f) => n + f.payload.length, 0)
        return out <= bytes.length && r.frames.every((f) => f.payload.length <= max)
      },
    ),
    { numRuns: 1000 },
  )
  tt.pass('1000 random inputs')
})
