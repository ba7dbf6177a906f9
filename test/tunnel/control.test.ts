// The control stream codec: a hex fixture, a round trip of every message type through the
// sequencing encoder and the push decoder, what the encoder refuses, seq and handshake order,
// and a fast-check property: any chunking of any valid conversation decodes the same.
import t from 'tap'
import fc from 'fast-check'
import { isDeepStrictEqual } from 'node:util'
import {
  ControlEncoder,
  encodeControl,
  MAX_CONTROL_MESSAGE_BYTES,
} from '../../shared/tunnel/control.js'
import type { Side } from '../../shared/tunnel/control-schema.js'
import type { HopgateError } from '../../shared/errors.js'
import {
  agentSamples,
  decodeAll,
  edgeSamples,
  frame,
  helloJson,
  hex,
  P1,
  services,
} from './control-samples.js'
import { chunkAt } from './chunks.js'

t.test('fixture: u32 length then compact JSON', async (tt) => {
  const b = encodeControl({ type: 'heartbeatAck', seq: 1, echo: 5, leaseExpiresInMs: 9 })
  const json = '{"type":"heartbeatAck","seq":1,"echo":5,"leaseExpiresInMs":9}'
  tt.equal(b.toString('hex'), hex('0000003d').toString('hex') + Buffer.from(json).toString('hex'))
})

t.test('every message type round-trips, seq stamped 1, 2, 3...', async (tt) => {
  for (const [side, samples] of [
    ['agent', agentSamples],
    ['edge', edgeSamples],
  ] as const) {
    const enc = new ControlEncoder<Side>(side)
    const bytes = samples.map((m) => enc.encode(m as never))
    const { messages, error } = decodeAll(side, bytes)
    tt.equal(error, undefined, `${side}: no error`)
    tt.same(
      messages,
      samples.map((m, i) => ({ ...m, seq: i + 1 })),
      `${side}: ${samples.map((m) => m.type).join(', ')}`,
    )
    tt.equal(enc.nextSeq, samples.length + 1)
  }
})

t.test('the encoder refuses what it must not send', async (tt) => {
  const agent = new ControlEncoder('agent')
  const code = (fn: () => unknown) => {
    try {
      fn()
    } catch (e) {
      return (e as HopgateError).code
    }
  }
  tt.equal(
    code(() => agent.encode(edgeSamples[0] as never)),
    'HOPGATE_ERR_CONTROL_UNKNOWN_TYPE',
    'wrong side',
  )
  tt.equal(agent.nextSeq, 1, 'a refused message uses no seq')
  const huge = {
    ...agentSamples[0]!,
    projects: Array.from({ length: 1000 }, () => ({ project: P1, services })),
  }
  tt.equal(
    code(() => agent.encode(huge as never)),
    'HOPGATE_ERR_CONTROL_TOO_LARGE',
    '> 64 KiB',
  )
  tt.equal(
    code(() => encodeControl({ type: 'drain', seq: 1, reason: '' })),
    'HOPGATE_ERR_CONTROL_BAD_MESSAGE',
  )
  tt.equal(
    code(() => encodeControl({ type: 'nope', seq: 1 } as never)),
    'HOPGATE_ERR_CONTROL_UNKNOWN_TYPE',
  )
  const stripped = encodeControl({ ...agentSamples[1]!, seq: 1, extra: 'dropped' } as never)
  tt.notMatch(stripped.toString(), /dropped/, 'unknown fields are not sent')
})

t.test('seq and handshake order', async (tt) => {
  const hb = (seq: number) =>
    frame(
      `{"type":"heartbeat","seq":${seq},"sentAt":1,"load":{"streams":0,"projects":0},"storage":{"freeBytes":0}}`,
    )
  const cases: Array<[string, Side, Buffer[]]> = [
    ['heartbeat before hello', 'agent', [hb(1)]],
    ['seq starts at 2', 'agent', [frame(helloJson().replace('"seq":1', '"seq":2'))]],
    ['seq repeats', 'agent', [frame(helloJson()), hb(1)]],
    ['seq skips', 'agent', [frame(helloJson()), hb(3)]],
    [
      'second hello',
      'agent',
      [frame(helloJson()), frame(helloJson().replace('"seq":1', '"seq":2'))],
    ],
    [
      'edge opens with heartbeatAck',
      'edge',
      [encodeControl({ type: 'heartbeatAck', seq: 1, echo: 1, leaseExpiresInMs: 1 })],
    ],
  ]
  for (const [name, side, chunks] of cases) {
    const r = decodeAll(side, chunks)
    tt.equal(r.error?.code, 'HOPGATE_ERR_CONTROL_OUT_OF_ORDER', name)
  }
  const refusal = encodeControl({
    type: 'error',
    seq: 1,
    code: 'HOPGATE_ERR_PKI_BAD_IDENTITY',
    message: 'runner id mismatch',
  })
  tt.equal(decodeAll('edge', [refusal]).error, undefined, 'the edge may refuse with error first')
})

const port = fc.integer({ min: 1, max: 65535 })
const hosted = fc.record({
  project: fc.uuid(),
  services: fc.record({
    ssh: fc.boolean(),
    raw: fc.boolean(),
    ports: fc.array(
      fc.oneof(
        port,
        fc.tuple(port, port).map(([a, b]): [number, number] => [Math.min(a, b), Math.max(a, b)]),
      ),
      { maxLength: 4 },
    ),
  }),
})
const count = fc.maxSafeNat()
const agentTail = fc.oneof(
  fc.record(
    {
      type: fc.constant('heartbeat' as const),
      sentAt: count,
      rttMs: fc.double({ min: 0, max: 3_600_000, noNaN: true }),
      load: fc.record({ streams: count, projects: count }),
      storage: fc.record({ freeBytes: count }),
    },
    { requiredKeys: ['type', 'sentAt', 'load', 'storage'] },
  ),
  fc.record({
    type: fc.constant('projects' as const),
    added: fc.array(hosted, { maxLength: 4 }),
    removed: fc.array(fc.uuid(), { maxLength: 4 }),
  }),
  fc.record({
    type: fc.constant('error' as const),
    code: fc.stringMatching(/^HOPGATE_ERR_[A-Z0-9_]{1,20}$/),
    message: fc.string({ unit: 'binary', maxLength: 200 }),
  }),
)
const hello = fc.record(
  {
    type: fc.constant('hello' as const),
    version: fc.integer({ min: 1, max: 255 }),
    runnerId: fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/),
    projects: fc.array(hosted, { maxLength: 6 }),
    capacity: fc.record({ maxProjects: count, cpus: count, memoryBytes: count }),
    storage: fc
      .tuple(count, count)
      .map(([a, b]) => ({ freeBytes: Math.min(a, b), totalBytes: Math.max(a, b) })),
    agentVersion: fc.stringMatching(/^[\x21-\x7e]{1,64}$/),
  },
  { requiredKeys: ['type', 'version', 'projects', 'capacity', 'storage', 'agentVersion'] },
)

t.test('property: any chunking of a valid conversation decodes the same', async (tt) => {
  fc.assert(
    fc.property(
      hello,
      fc.array(agentTail, { maxLength: 12 }),
      fc.array(fc.nat(), { maxLength: 40 }),
      (first, rest, cuts) => {
        const enc = new ControlEncoder('agent')
        const sent = [first, ...rest]
        const bytes = Buffer.concat(sent.map((m) => enc.encode(m)))
        const whole = decodeAll('agent', [bytes])
        const split = decodeAll('agent', chunkAt(bytes, cuts))
        // Through JSON: fast-check may build null-prototype records, the decoder never does.
        const want: unknown = JSON.parse(JSON.stringify(sent.map((m, i) => ({ ...m, seq: i + 1 }))))
        return (
          whole.error === undefined &&
          split.error === undefined &&
          isDeepStrictEqual(whole.messages, want) &&
          isDeepStrictEqual(split.messages, want) &&
          split.maxHeld <= MAX_CONTROL_MESSAGE_BYTES + 4
        )
      },
    ),
    { numRuns: 300 },
  )
  tt.pass('300 random conversations, randomly chunked')
})
