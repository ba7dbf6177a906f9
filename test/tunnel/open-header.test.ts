// The stream-open header codec: hex fixtures both ways, every invalid input with its code, the
// push reader's early refusal and 1 KiB bound, and fast-check properties (round trip, chunking,
// arbitrary and mutated bytes only ever give typed errors).
import t from 'tap'
import fc from 'fast-check'
import { isIPv6 } from 'node:net'
import {
  encodeOpenHeader,
  OpenHeaderReader,
  tryDecodeOpenHeader,
  type OpenHeader,
} from '../../shared/tunnel/open-header.js'
import { chunkAt } from './chunks.js'
import { ERROR_CATALOG, HopgateError, type ErrorCode } from '../../shared/errors.js'

const P = 'HOPGATE_ERR_OPEN_HEADER_'
type HeaderCode = ErrorCode extends infer C
  ? C extends `HOPGATE_ERR_OPEN_HEADER_${infer S}`
    ? S
    : never
  : never

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex')
const PROJECT = '0f8fad5b-d9cb-469f-a165-70867728950e'
const base: OpenHeader = {
  project: PROJECT,
  service: 'port',
  port: 8080,
  routeEpoch: 7,
  clientAddress: '203.0.113.7:51234',
  traceId: 'req-1',
}
// length | ver | flags | project (16) | svc | port | epoch (8) | alen address | tlen trace
const FIXTURE_PORT = `0035 01 00 0f8fad5bd9cb469fa16570867728950e 02 1f90 0000000000000007
  11 3230332e302e3131332e373a3531323334 05 7265712d31`
const FIXTURE_SSH = `0031 01 00 0f8fad5bd9cb469fa16570867728950e 01 0000 0000000000000001
  11 5b323030313a6462383a3a315d3a343433 01 61`

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (err) {
    return err instanceof HopgateError ? err.code : `untyped: ${String(err)}`
  }
  return undefined
}

/** A valid header's bytes with `edit` applied, the length field kept consistent. */
function mutate(edit: (b: Buffer) => Buffer, h: OpenHeader = base): Buffer {
  const b = edit(Buffer.from(encodeOpenHeader(h)))
  b.writeUInt16BE(b.length - 2, 0)
  return b
}

/** A valid header with `tail` appended inside its declared length. */
const ext = (tail: string): Buffer => mutate((b) => Buffer.concat([b, hex(tail)]))

t.test('fixtures encode to exact bytes and decode back', async (tt) => {
  const ssh: OpenHeader = {
    project: PROJECT,
    service: 'ssh',
    port: 0,
    routeEpoch: 1,
    clientAddress: '[2001:db8::1]:443',
    traceId: 'a',
  }
  for (const [want, h] of [
    [FIXTURE_PORT, base],
    [FIXTURE_SSH, ssh],
  ] as const) {
    tt.equal(encodeOpenHeader(h).toString('hex'), hex(want).toString('hex'))
    tt.same(tryDecodeOpenHeader(hex(want)), { header: h, consumed: hex(want).length })
  }
  const withPayload = Buffer.concat([hex(FIXTURE_PORT), Buffer.from('GET / HTTP/1.1\r\n')])
  tt.same(tryDecodeOpenHeader(withPayload), { header: base, consumed: 55 }, 'payload not read')
  tt.same(tryDecodeOpenHeader(hex(FIXTURE_PORT).subarray(0, 10)), { need: 45 })
  tt.same(tryDecodeOpenHeader(Buffer.alloc(0)), { need: 2 })
})

t.test('the encoder refuses every invalid field with its code', async (tt) => {
  const cases: Array<[string, Partial<OpenHeader>, HeaderCode]> = [
    ['uppercase project', { project: PROJECT.toUpperCase() }, 'BAD_PROJECT'],
    ['project without dashes', { project: PROJECT.replaceAll('-', '') }, 'BAD_PROJECT'],
    ['project with braces', { project: `{${PROJECT}}` }, 'BAD_PROJECT'],
    ['service http', { service: 'http' as 'raw' }, 'UNKNOWN_SERVICE'],
    ['service __proto__', { service: '__proto__' as 'raw' }, 'UNKNOWN_SERVICE'],
    ['port service, port 0', { port: 0 }, 'BAD_PORT'],
    ['port 65536', { port: 65536 }, 'BAD_PORT'],
    ['port 80.5', { port: 80.5 }, 'BAD_PORT'],
    ['ssh with a port', { service: 'ssh', port: 22 }, 'BAD_PORT'],
    ['raw with a port', { service: 'raw', port: 80 }, 'BAD_PORT'],
    ['epoch 0', { routeEpoch: 0 }, 'BAD_EPOCH'],
    ['epoch 2^53', { routeEpoch: 2 ** 53 }, 'BAD_EPOCH'],
    ['epoch 1.5', { routeEpoch: 1.5 }, 'BAD_EPOCH'],
    ['address without port', { clientAddress: '203.0.113.7' }, 'BAD_ADDRESS'],
    ['address hostname', { clientAddress: 'evil.example:80' }, 'BAD_ADDRESS'],
    ['unbracketed v6', { clientAddress: '2001:db8::1:443' }, 'BAD_ADDRESS'],
    ['address port 0', { clientAddress: '203.0.113.7:0' }, 'BAD_ADDRESS'],
    ['address too long', { clientAddress: `[${'1:'.repeat(30)}:1]:443` }, 'BAD_ADDRESS'],
    ['empty trace', { traceId: '' }, 'BAD_TRACE_ID'],
    ['trace 65 bytes', { traceId: 'x'.repeat(65) }, 'BAD_TRACE_ID'],
    ['trace with space', { traceId: 'a b' }, 'BAD_TRACE_ID'],
    ['trace non-ASCII', { traceId: 'été' }, 'BAD_TRACE_ID'],
  ]
  for (const [name, patch, code] of cases) {
    tt.equal(
      codeOf(() => encodeOpenHeader({ ...base, ...patch })),
      `${P}${code}`,
      name,
    )
  }
})

t.test('the decoder refuses every invalid header with its code', async (tt) => {
  const at = (i: number, v: number) => (b: Buffer) => ((b[i] = v), b)
  const cases: Array<[string, Buffer, HeaderCode]> = [
    ['length 1023 (1025 in all)', hex('03ff'), 'TOO_LARGE'],
    ['length 65535', hex('ffff'), 'TOO_LARGE'],
    ['length 0', hex('0000'), 'TRUNCATED'],
    ['version 2', hex('0035 02'), 'BAD_VERSION'],
    ['version 0', hex('0035 00'), 'BAD_VERSION'],
    ['length below the fixed part', hex('001e 01'), 'TRUNCATED'],
    ['flags set', mutate(at(3, 0x01)), 'BAD_FLAGS'],
    ['service 0', mutate(at(20, 0)), 'UNKNOWN_SERVICE'],
    ['service 4', mutate(at(20, 4)), 'UNKNOWN_SERVICE'],
    ['ssh with port 8080', mutate(at(20, 1)), 'BAD_PORT'],
    ['port service, port 0', mutate((b) => (b.writeUInt16BE(0, 21), b)), 'BAD_PORT'],
    ['epoch 0', mutate((b) => (b.writeBigUInt64BE(0n, 23), b)), 'BAD_EPOCH'],
    ['epoch 2^53', mutate((b) => (b.writeBigUInt64BE(2n ** 53n, 23), b)), 'BAD_EPOCH'],
    ['address length 0', mutate(at(31, 0)), 'BAD_ADDRESS'],
    ['address length 65', mutate(at(31, 65)), 'BAD_ADDRESS'],
    ['address past the end', mutate((b) => ((b[31] = 40), b.subarray(0, 60))), 'TRUNCATED'],
    ['address byte 0xff', mutate(at(33, 0xff)), 'BAD_ADDRESS'],
    ['address NUL', mutate(at(33, 0x00)), 'BAD_ADDRESS'],
    ['address 999.x', mutate((b) => (b.write('999', 32, 'latin1'), b)), 'BAD_ADDRESS'],
    ['no trace length', mutate((b) => b.subarray(0, 49)), 'TRUNCATED'],
    ['trace length 0', mutate((b) => ((b[49] = 0), b.subarray(0, 50))), 'BAD_TRACE_ID'],
    ['trace length 65', mutate(at(49, 65)), 'BAD_TRACE_ID'],
    ['trace past the end', mutate(at(49, 6)), 'TRUNCATED'],
    ['trace with "/"', mutate(at(52, 0x2f)), 'BAD_TRACE_ID'],
    ['1 trailing byte', ext('80'), 'TRAILING_GARBAGE'],
    ['2 trailing bytes', ext('8000'), 'TRAILING_GARBAGE'],
    ['extension past the end', ext('80 0005 0102'), 'TRAILING_GARBAGE'],
    ['critical extension', ext('01 0001 ff'), 'BAD_EXTENSION'],
    ['duplicate extension', ext('81 0000 81 0000'), 'BAD_EXTENSION'],
    ['descending extensions', ext('90 0000 81 0000'), 'BAD_EXTENSION'],
  ]
  for (const [name, bytes, code] of cases) {
    tt.equal(
      codeOf(() => tryDecodeOpenHeader(bytes)),
      `${P}${code}`,
      name,
    )
  }
})

t.test('v1 skips extensions marked may-ignore', async (tt) => {
  const bytes = ext('80 0003 616263 fe 0000')
  const r = tryDecodeOpenHeader(Buffer.concat([bytes, Buffer.from('payload')]))
  tt.same(r, { header: base, consumed: bytes.length })
})

t.test('the reader refuses on sight and holds at most the header', async (tt) => {
  const r1 = new OpenHeaderReader()
  tt.equal(
    codeOf(() => r1.push(hex('ff'))),
    undefined,
    'one byte: waits',
  )
  tt.equal(r1.bufferedBytes, 1)
  tt.equal(
    codeOf(() => r1.push(hex('ff'))),
    `${P}TOO_LARGE`,
    '2nd byte',
  )
  tt.equal(r1.bufferedBytes, 0, 'nothing held after a failure')
  tt.equal(
    codeOf(() => r1.push(hex(FIXTURE_PORT))),
    `${P}TOO_LARGE`,
    'sticky',
  )

  const r2 = new OpenHeaderReader()
  tt.equal(
    codeOf(() => r2.push(hex('0035 07'))),
    `${P}BAD_VERSION`,
    'on byte 3',
  )

  const r3 = new OpenHeaderReader()
  const bytes = Buffer.concat([hex(FIXTURE_PORT), Buffer.alloc(64 * 1024, 0x41)])
  tt.equal(r3.push(bytes.subarray(0, 30)), undefined)
  tt.equal(r3.bufferedBytes, 30)
  const done = r3.push(bytes.subarray(30))
  tt.same(done?.header, base)
  tt.equal(done?.rest.length, 64 * 1024, 'payload is handed back, not copied or held')
  tt.equal(r3.bufferedBytes, 0)
  tt.throws(() => r3.push(Buffer.alloc(1)), /already read/, 'single use')
})

const port = fc.integer({ min: 1, max: 65535 })
const headerArb: fc.Arbitrary<OpenHeader> = fc
  .record({
    project: fc.uuid(),
    service: fc.constantFrom('ssh' as const, 'port' as const, 'raw' as const),
    port,
    routeEpoch: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
    clientAddress: fc.oneof(
      fc.tuple(fc.ipV4(), port).map(([ip, p]) => `${ip}:${p}`),
      fc
        .tuple(
          fc.ipV6().filter((ip) => isIPv6(ip)),
          port,
        )
        .map(([ip, p]) => `[${ip}]:${p}`),
    ),
    traceId: fc.stringMatching(/^[A-Za-z0-9._-]{1,64}$/),
  })
  .map((h) => ({ ...h, port: h.service === 'port' ? h.port : 0 }))

t.test('property: encode/decode round trip; any chunking reads the same', async (tt) => {
  fc.assert(
    fc.property(
      headerArb,
      fc.uint8Array({ maxLength: 100 }),
      fc.array(fc.nat(), { maxLength: 12 }),
      (h, payload, cuts) => {
        const bytes = encodeOpenHeader(h)
        if (bytes.length > 1024) return false
        const whole = tryDecodeOpenHeader(bytes)
        if (!('header' in whole) || whole.consumed !== bytes.length) return false
        const reader = new OpenHeaderReader()
        let got: OpenHeader | undefined
        const rest: Buffer[] = []
        for (const c of chunkAt(Buffer.concat([bytes, payload]), cuts)) {
          if (got) rest.push(c)
          else {
            const r = reader.push(c)
            if (reader.bufferedBytes > 1024) return false
            if (r) {
              got = r.header
              rest.push(r.rest)
            }
          }
        }
        return (
          JSON.stringify(got) === JSON.stringify(h) &&
          JSON.stringify(whole.header) === JSON.stringify(h) &&
          Buffer.concat(rest).equals(Buffer.from(payload))
        )
      },
    ),
    { numRuns: 1000 },
  )
  tt.pass('1000 random headers, randomly chunked')
})

t.test('property: arbitrary and mutated bytes give only typed errors, hold ≤ 1 KiB', async (tt) => {
  const known = new Set(Object.keys(ERROR_CATALOG))
  const input = fc.oneof(
    fc.uint8Array({ maxLength: 3000 }).map((a) => Buffer.from(a)),
    fc
      .tuple(
        headerArb,
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), {
          minLength: 1,
          maxLength: 4,
        }),
      )
      .map(([h, flips]) => {
        const b = Buffer.from(encodeOpenHeader(h))
        for (const [i, v] of flips) b[i % b.length] = v
        return b
      }),
  )
  fc.assert(
    fc.property(input, fc.array(fc.nat(), { maxLength: 10 }), (bytes, cuts) => {
      const reader = new OpenHeaderReader()
      try {
        for (const c of chunkAt(bytes, cuts)) {
          const r = reader.push(c)
          if (reader.bufferedBytes > 1024) return false
          if (r) return r.rest.length <= bytes.length
        }
        return bytes.length < 1024
      } catch (err) {
        return err instanceof HopgateError && known.has(err.code) && err.code.startsWith(P)
      }
    }),
    { numRuns: 2000 },
  )
  tt.pass('2000 random inputs')
})
