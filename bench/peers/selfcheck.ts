// Quick known-good check of the third-party peer adapters against each other, independent of our
// own yamux: libp2p <-> libp2p, yamux-js client <-> libp2p server, libp2p client <-> yamux-js server.
// Run: node --import tsx bench/peers/selfcheck.ts
import assert from 'node:assert/strict'
import type { Duplex } from 'node:stream'
import { libp2pPeer } from './libp2p.js'
import { yamuxJsPeer } from './yamux-js.js'
import type { MuxPeer } from './types.js'
import { nextError, readAll, readExactly, recvBytes, sendBytes, tcpPair } from './testkit.js'

const MiB = 1024 * 1024

function echo(s: Duplex): void {
  s.on('error', () => {})
  s.pipe(s)
}

async function step(name: string, fn: () => Promise<void>, ms = 60_000): Promise<void> {
  const t0 = performance.now()
  let timer: NodeJS.Timeout | undefined
  try {
    await Promise.race([
      fn(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timeout after ${ms} ms`)), ms)
      }),
    ])
    console.log(`ok   ${name} (${(performance.now() - t0).toFixed(0)} ms)`)
  } catch (err) {
    process.exitCode = 1
    console.log(`FAIL ${name}: ${(err as Error).stack}`)
  } finally {
    clearTimeout(timer)
  }
}

async function libp2pBoth(): Promise<void> {
  const pair = await tcpPair()
  const client = libp2pPeer(pair.a, 'client')
  const server = libp2pPeer(pair.b, 'server')
  const inbound: { client: Duplex[]; server: Duplex[] } = { client: [], server: [] }
  const waiters: Array<() => void> = []
  const onIn = (side: 'client' | 'server') => (s: Duplex) => {
    inbound[side].push(s)
    for (const w of waiters.splice(0)) w()
  }
  client.onStream(onIn('client'))
  server.onStream(onIn('server'))
  const nextInbound = async (side: 'client' | 'server'): Promise<Duplex> => {
    for (;;) {
      const s = inbound[side].shift()
      if (s !== undefined) return s
      await new Promise<void>((r) => waiters.push(r))
    }
  }

  await step('libp2p<->libp2p: client opens, half-close echo', async () => {
    const s = await client.openStream()
    s.end('hello')
    const r = await nextInbound('server')
    assert.equal((await readAll(r)).toString(), 'hello')
    r.end('world') // server still sends after client's FIN
    assert.equal((await readAll(s)).toString(), 'world')
  })
  await step('libp2p<->libp2p: server opens', async () => {
    const s = await server.openStream()
    s.write('ping')
    const r = await nextInbound('client')
    assert.equal((await readExactly(r, 4)).toString(), 'ping')
    r.end('pong')
    assert.equal((await readAll(s)).toString(), 'pong')
    s.end()
    assert.equal((await readAll(r)).length, 0)
  })
  await step('libp2p<->libp2p: 64 MiB each way at once, slow reader start', async () => {
    const s = await client.openStream()
    s.write('x')
    const r = await nextInbound('server')
    assert.equal((await readExactly(r, 1)).toString(), 'x')
    const [up, down, gotUp, gotDown] = await Promise.all([
      sendBytes(s, 64 * MiB),
      sendBytes(r, 64 * MiB),
      recvBytes(r, { pauseFirstMs: 1000 }),
      recvBytes(s, { pauseFirstMs: 1000 }),
    ])
    assert.equal(gotUp.bytes, 64 * MiB)
    assert.equal(gotDown.bytes, 64 * MiB)
    assert.equal(gotUp.sha256, up)
    assert.equal(gotDown.sha256, down)
  })
  await step('libp2p<->libp2p: ping both ways', async () => {
    assert.equal(typeof (await client.ping()), 'number')
    assert.equal(typeof (await server.ping()), 'number')
  })
  await step('libp2p<->libp2p: RST', async () => {
    const s = await client.openStream()
    s.write('a')
    const r = await nextInbound('server')
    await readExactly(r, 1)
    const err = nextError(r)
    s.destroy()
    assert.equal((await err).name, 'StreamResetError')
  })
  await step('libp2p<->libp2p: goAway from server', async () => {
    const keep = await client.openStream()
    keep.write('k')
    const kr = await nextInbound('server')
    await readExactly(kr, 1)
    server.goAway()
    await assert.rejects(server.openStream(), /closed/)
    // libp2p on receiving GoAway(normal) closes all its streams and its muxer at once
    if (!keep.closed) await new Promise((resolve) => keep.once('close', resolve))
    assert.equal(client.muxer.status, 'closed')
    await assert.rejects(client.openStream(), /closed/)
  })
  await Promise.all([client.close(), server.close()])
  await pair.close()
}

async function crossCheck(
  label: string,
  mkClient: (d: Duplex) => MuxPeer,
  mkServer: (d: Duplex) => MuxPeer,
  bulk: number,
): Promise<void> {
  const pair = await tcpPair()
  const client = mkClient(pair.a)
  const server = mkServer(pair.b)
  server.onStream(echo)
  await step(`${label}: open + echo small messages`, async () => {
    const s = await client.openStream()
    for (const msg of ['one', 'two', 'three'.repeat(100)]) {
      s.write(msg)
      assert.equal((await readExactly(s, msg.length)).toString(), msg)
    }
    s.destroy()
  })
  await step(`${label}: ${bulk} bytes echoed`, async () => {
    const s = await client.openStream()
    const [sent, got] = await Promise.all([
      sendBytes(s, bulk, { keepOpen: true }),
      readExactly(s, bulk).then((b) => b),
    ])
    const { createHash } = await import('node:crypto')
    assert.equal(createHash('sha256').update(got).digest('hex'), sent)
    s.destroy()
  })
  await step(`${label}: ping client->server and server->client`, async () => {
    assert.equal(typeof (await client.ping?.()), 'number')
    assert.equal(typeof (await server.ping?.()), 'number')
  })
  await Promise.all([client.close(), server.close()])
  await pair.close()
}

await libp2pBoth()
await crossCheck(
  'yamux-js client -> libp2p server',
  (d) => yamuxJsPeer(d, 'client'),
  (d) => libp2pPeer(d, 'server'),
  4 * MiB,
)
await crossCheck(
  'libp2p client -> yamux-js server',
  (d) => libp2pPeer(d, 'client'),
  (d) => yamuxJsPeer(d, 'server'),
  4 * MiB,
)
console.log(process.exitCode === 1 ? 'SELF-CHECK FAILED' : 'self-check passed')
