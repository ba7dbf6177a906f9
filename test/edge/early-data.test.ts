// A raw TCP user's first bytes ride right behind the stream-open header, before the agent's
// status (PROTOCOL.md: the edge MAY; the agent reads them only after status 0), over a real
// mutual-TLS yamux session. The agent side here is a hand-written one that answers only when the
// test says, so what arrived before the status is observable: the bytes, replayed on a
// stale-epoch retry, a FIN that came early, and the per-connection cap.
import t from 'tap'
import net from 'node:net'
import { once } from 'node:events'
import { randomBytes } from 'node:crypto'
import type { TapTest } from '../helpers/yamux-pair.js'
import type { YamuxStream } from '../../shared/yamux/index.js'
import { StreamOpener } from '../../edge/tunnel/opener.js'
import { startTcpIngress, parseTcpMapping } from '../../edge/ingress/tcp.js'
import { OpenHeaderReader, type OpenHeader } from '../../shared/tunnel/open-header.js'
import { encodeOpenStatus, OpenStatus } from '../../shared/tunnel/open-status.js'
import { EARLY_DATA_MAX_BYTES } from '../../shared/tunnel/early-data.js'
import { edgeAgentPair, project } from './routing-helpers.js'

const P = project(1)

/** One stream as the agent sees it before answering: the header and every byte after it. */
interface Held {
  stream: YamuxStream
  header: OpenHeader
  /** Payload after the header so far. */
  payload: () => Buffer
  ended: () => boolean
  /** Resolves once `n` payload bytes arrived. */
  bytes: (n: number) => Promise<void>
}

async function setup(tt: TapTest): Promise<{ port: number; next: () => Promise<Held> }> {
  const { router, sessions, agentSession } = await edgeAgentPair(tt)
  const opener = new StreamOpener({ router, sessions, statusTimeoutMs: 5000 })
  const ingress = await startTcpIngress(parseTcpMapping(`127.0.0.1:0=${P}:7000`), opener)
  tt.teardown(() => ingress.close())
  const queue: Held[] = []
  const waiters: Array<(h: Held) => void> = []
  agentSession.on('stream', (stream) => {
    const reader = new OpenHeaderReader()
    let header: OpenHeader | undefined
    const chunks: Buffer[] = []
    let size = 0
    let ended = false
    const want: Array<[number, () => void]> = []
    stream.on('error', () => {})
    stream.on('end', () => (ended = true))
    stream.on('data', (c: Buffer) => {
      if (!header) {
        const got = reader.push(c)
        if (!got) return
        header = got.header
        c = got.rest
        const held: Held = {
          stream,
          header,
          payload: () => Buffer.concat(chunks),
          ended: () => ended,
          // Bounded: a missing byte fails the test in 5 s instead of hanging it.
          bytes: (n) =>
            new Promise((resolve, reject) => {
              if (size >= n) return resolve()
              const timer = setTimeout(() => reject(new Error(`${size} of ${n} bytes`)), 5000)
              want.push([n, () => (clearTimeout(timer), resolve())])
            }),
        }
        const w = waiters.shift()
        if (w) w(held)
        else queue.push(held)
      }
      chunks.push(c)
      size += c.length
      for (const [n, resolve] of want.splice(0)) {
        if (size >= n) resolve()
        else want.push([n, resolve])
      }
    })
  })
  const next = (): Promise<Held> =>
    new Promise((resolve) => {
      const h = queue.shift()
      if (h) resolve(h)
      else waiters.push(resolve)
    })
  return { port: ingress.address.port, next }
}

function collect(sock: net.Socket): () => Buffer {
  const chunks: Buffer[] = []
  sock.on('data', (c: Buffer) => chunks.push(c))
  return () => Buffer.concat(chunks)
}

t.test('the first bytes reach the agent before it answers, once, and flow after', async (tt) => {
  const env = await setup(tt)
  const client = net.connect(env.port, '127.0.0.1')
  const got = collect(client)
  client.write('hello early')
  const held = await env.next()
  await held.bytes(11)
  tt.equal(held.payload().toString(), 'hello early', 'behind the header, no status written yet')
  held.stream.write(encodeOpenStatus(OpenStatus.Ok))
  held.stream.write(held.payload())
  client.write(' and late')
  await held.bytes(20)
  tt.equal(held.payload().toString(), 'hello early and late', 'later bytes follow, none twice')
  held.stream.end()
  client.end()
  await once(client, 'end')
  tt.equal(got().toString(), 'hello early', 'the answer reaches the user')
})

t.test('a stale-epoch retry sends the same early bytes on the new stream', async (tt) => {
  const env = await setup(tt)
  const client = net.connect(env.port, '127.0.0.1')
  const got = collect(client)
  client.write('replay me')
  const first = await env.next()
  await first.bytes(9)
  first.stream.end(encodeOpenStatus(OpenStatus.StaleEpoch))
  const second = await env.next()
  await second.bytes(9)
  tt.equal(second.payload().toString(), 'replay me', 'the retry carries them again')
  tt.equal(second.header.project, P)
  second.stream.write(encodeOpenStatus(OpenStatus.Ok))
  second.stream.end(second.payload())
  client.end()
  await once(client, 'end')
  tt.equal(got().toString(), 'replay me')
})

t.test(
  'a FIN before the status reaches the agent after it, with the bytes before it',
  async (tt) => {
    const env = await setup(tt)
    const client = net.connect({ port: env.port, host: '127.0.0.1', allowHalfOpen: true })
    const got = collect(client)
    client.end('bye')
    const held = await env.next()
    await held.bytes(3)
    // Give the FIN time to reach the edge: it must not be relayed before the status.
    await new Promise((r) => setTimeout(r, 100))
    tt.notOk(held.ended(), 'no FIN before the status (a retry could not undo it)')
    held.stream.write(encodeOpenStatus(OpenStatus.Ok))
    await once(held.stream, 'end')
    tt.equal(held.payload().toString(), 'bye', 'then the end, after the bytes')
    held.stream.end('ok')
    await once(client, 'end')
    tt.equal(got().toString(), 'ok')
  },
)

t.test('at most the cap is read before the status; the rest follows intact', async (tt) => {
  const env = await setup(tt)
  const client = net.connect(env.port, '127.0.0.1')
  const data = randomBytes(4 * EARLY_DATA_MAX_BYTES)
  client.write(data)
  const held = await env.next()
  await held.bytes(EARLY_DATA_MAX_BYTES)
  await new Promise((r) => setTimeout(r, 100))
  const before = held.payload().length
  // One socket read past the cap at most (the check follows each read of up to 64 KiB).
  tt.ok(before <= 2 * EARLY_DATA_MAX_BYTES, `${before} bytes before the status`)
  tt.ok(before < data.length, 'the socket was paused before all of it')
  held.stream.write(encodeOpenStatus(OpenStatus.Ok))
  await held.bytes(data.length)
  tt.ok(held.payload().equals(data), 'every byte, in order, none twice')
  held.stream.end()
  client.destroy()
})
