// Hostile and broken control input: oversize lengths, garbled bytes, unknown or misdirected
// types, schema violations and JSON built to pollute prototypes or exhaust stacks. Each must give
// its typed error with GoAway(protocol error), hold at most one message, and pollute nothing.
import t from 'tap'
import fc from 'fast-check'
import { ControlDecoder, MAX_CONTROL_MESSAGE_BYTES } from '../../shared/tunnel/control.js'
import type { Side } from '../../shared/tunnel/control-schema.js'
import { ERROR_CATALOG, HopgateError } from '../../shared/errors.js'
import { decodeAll, frame, helloJson, hex, P1, services } from './control-samples.js'
import { chunkAt } from './chunks.js'

t.test('framing and JSON errors', async (tt) => {
  const over = Buffer.alloc(4)
  over.writeUInt32BE(MAX_CONTROL_MESSAGE_BYTES + 1)
  const cases: Array<[string, Side, Buffer[], string]> = [
    ['length 65537, refused on 4 bytes', 'agent', [over], 'HOPGATE_ERR_CONTROL_TOO_LARGE'],
    ['length 2^32-1', 'agent', [hex('ffffffff')], 'HOPGATE_ERR_CONTROL_TOO_LARGE'],
    ['empty body', 'agent', [frame('')], 'HOPGATE_ERR_CONTROL_BAD_JSON'],
    ['not JSON', 'agent', [frame('hello')], 'HOPGATE_ERR_CONTROL_BAD_JSON'],
    [
      'invalid UTF-8',
      'agent',
      [frame(Buffer.concat([Buffer.from('{"type":"'), hex('ff'), Buffer.from('"}')]))],
      'HOPGATE_ERR_CONTROL_BAD_JSON',
    ],
    [
      'BOM',
      'agent',
      [frame(Buffer.concat([hex('efbbbf'), Buffer.from(helloJson())]))],
      'HOPGATE_ERR_CONTROL_BAD_JSON',
    ],
    ['two values', 'agent', [frame(`${helloJson()}{}`)], 'HOPGATE_ERR_CONTROL_BAD_JSON'],
    ['JSON null', 'agent', [frame('null')], 'HOPGATE_ERR_CONTROL_BAD_MESSAGE'],
    ['JSON array', 'agent', [frame('[1]')], 'HOPGATE_ERR_CONTROL_BAD_MESSAGE'],
    ['JSON string', 'agent', [frame('"hello"')], 'HOPGATE_ERR_CONTROL_BAD_MESSAGE'],
    ['cut short', 'agent', [frame(helloJson()).subarray(0, 20)], 'HOPGATE_ERR_CONTROL_TRUNCATED'],
    ['cut in the length', 'agent', [hex('0000')], 'HOPGATE_ERR_CONTROL_TRUNCATED'],
  ]
  for (const [name, side, chunks, code] of cases) {
    const r = decodeAll(side, chunks)
    tt.equal(r.error?.code, code, name)
    tt.equal(r.error?.goAway, 1, `${name}: GoAway(protocol error)`)
    tt.ok(r.maxHeld <= MAX_CONTROL_MESSAGE_BYTES + 4, `${name}: bounded`)
  }
  const r = decodeAll('agent', [over, frame(helloJson())])
  tt.equal(r.messages.length, 0, 'input after an error is ignored')
})

t.test('unknown types, wrong sides and schema violations', async (tt) => {
  const cases: Array<[string, Side, string, string]> = [
    ['unknown type', 'agent', '{"type":"bogus","seq":1}', 'HOPGATE_ERR_CONTROL_UNKNOWN_TYPE'],
    ['type __proto__', 'agent', '{"type":"__proto__","seq":1}', 'HOPGATE_ERR_CONTROL_UNKNOWN_TYPE'],
    [
      'type constructor',
      'agent',
      '{"type":"constructor","seq":1}',
      'HOPGATE_ERR_CONTROL_UNKNOWN_TYPE',
    ],
    ['type toString', 'edge', '{"type":"toString","seq":1}', 'HOPGATE_ERR_CONTROL_UNKNOWN_TYPE'],
    ['no type', 'agent', '{"seq":1}', 'HOPGATE_ERR_CONTROL_UNKNOWN_TYPE'],
    ['numeric type', 'agent', '{"type":1,"seq":1}', 'HOPGATE_ERR_CONTROL_UNKNOWN_TYPE'],
    [
      'agent sends welcome',
      'agent',
      '{"type":"welcome","seq":1,"version":1,"edgeId":"e","heartbeatIntervalMs":1000,"leaseTtlMs":3000}',
      'HOPGATE_ERR_CONTROL_UNKNOWN_TYPE',
    ],
    ['edge sends hello', 'edge', helloJson(), 'HOPGATE_ERR_CONTROL_UNKNOWN_TYPE'],
    [
      'uppercase project',
      'agent',
      helloJson().replace(
        '"projects":[]',
        `"projects":[{"project":"${P1.toUpperCase()}","services":${JSON.stringify(services)}}]`,
      ),
      'HOPGATE_ERR_CONTROL_BAD_MESSAGE',
    ],
    [
      'free > total',
      'agent',
      helloJson().replace('"freeBytes":1', '"freeBytes":2'),
      'HOPGATE_ERR_CONTROL_BAD_MESSAGE',
    ],
    [
      'unsafe integer',
      'agent',
      helloJson().replace('"memoryBytes":1', '"memoryBytes":1e300'),
      'HOPGATE_ERR_CONTROL_BAD_MESSAGE',
    ],
    [
      'seq as string',
      'agent',
      helloJson().replace('"seq":1', '"seq":"1"'),
      'HOPGATE_ERR_CONTROL_BAD_MESSAGE',
    ],
    [
      'bad directAddress',
      'agent',
      helloJson(',"directAddress":"http://x"'),
      'HOPGATE_ERR_CONTROL_BAD_MESSAGE',
    ],
    [
      'runnerId with slash',
      'agent',
      helloJson(',"runnerId":"../etc"'),
      'HOPGATE_ERR_CONTROL_BAD_MESSAGE',
    ],
    [
      'welcome version 2',
      'edge',
      '{"type":"welcome","seq":1,"version":2,"edgeId":"e","heartbeatIntervalMs":1000,"leaseTtlMs":3000}',
      'HOPGATE_ERR_CONTROL_BAD_MESSAGE',
    ],
    [
      '60 KB string where 256 fit',
      'edge',
      `{"type":"error","seq":1,"code":"HOPGATE_ERR_X","message":"${'x'.repeat(60_000)}"}`,
      'HOPGATE_ERR_CONTROL_BAD_MESSAGE',
    ],
    [
      'deep nesting in a field',
      'agent',
      helloJson().replace('"projects":[]', `"projects":${'['.repeat(30_000)}${']'.repeat(30_000)}`),
      'HOPGATE_ERR_CONTROL_BAD_MESSAGE',
    ],
  ]
  for (const [name, side, json, code] of cases) {
    tt.ok(Buffer.byteLength(json) <= MAX_CONTROL_MESSAGE_BYTES, `${name}: within 64 KiB`)
    const r = decodeAll(side, [frame(json)])
    tt.equal(r.error?.code, code, name)
    tt.ok((r.error?.message.length ?? 0) < 600, `${name}: detail does not echo the input`)
  }
})

t.test('hostile JSON that fits the schema: unknown keys dropped, nothing polluted', async (tt) => {
  const deep = `${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}`
  const json = helloJson(
    `,"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}},"deep":${deep}`,
  ).replace('"cpus":1', '"cpus":1,"__proto__":{"polluted":true}')
  const r = decodeAll('agent', [frame(json)])
  tt.equal(r.error, undefined)
  const msg = r.messages[0] as Record<string, unknown> & { capacity: object }
  tt.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype untouched')
  tt.equal(Object.getPrototypeOf(msg), Object.prototype)
  tt.equal(Object.getPrototypeOf(msg.capacity), Object.prototype)
  tt.notOk(Object.hasOwn(msg, '__proto__'), 'no own __proto__ key')
  tt.notOk(Object.hasOwn(msg, 'deep'), 'unknown fields dropped')
  tt.notOk(Object.hasOwn(msg.capacity, '__proto__'), 'nested __proto__ dropped')
})

t.test(
  'property: arbitrary bytes and JSON give only typed errors, hold ≤ 64 KiB + 4',
  async (tt) => {
    const known = new Set(Object.keys(ERROR_CATALOG))
    const input = fc.oneof(
      fc.uint8Array({ maxLength: 3000 }).map((a) => Buffer.from(a)),
      fc.jsonValue().map((v) => frame(JSON.stringify(v) ?? 'null')),
      fc
        .tuple(fc.jsonValue(), fc.constantFrom('hello', 'welcome', 'error', '__proto__'))
        .map(([v, type]) => frame(JSON.stringify({ type, seq: 1, v }))),
      fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.concat([frame(helloJson()), a])),
    )
    fc.assert(
      fc.property(
        input,
        fc.constantFrom<Side>('agent', 'edge'),
        fc.array(fc.nat(), { maxLength: 10 }),
        (bytes, side, cuts) => {
          let failure: unknown
          const d = new ControlDecoder(side, { onMessage: () => {}, onError: (e) => (failure = e) })
          try {
            for (const c of chunkAt(bytes, cuts)) {
              d.push(c)
              if (d.bufferedBytes > MAX_CONTROL_MESSAGE_BYTES + 4) return false
            }
            d.end()
          } catch {
            return false
          }
          return (
            failure === undefined ||
            (failure instanceof HopgateError &&
              known.has(failure.code) &&
              failure.code.startsWith('HOPGATE_ERR_CONTROL_') &&
              failure.goAway === 1)
          )
        },
      ),
      { numRuns: 1000 },
    )
    tt.pass('1000 random inputs')
  },
)
