// The stream path end to end inside one process, over a real mutual-TLS yamux session: raw TCP
// ingress -> opener (route, epoch, header) -> agent stream server (fencing, registry, dial) ->
// echo target. Then the SSRF and fencing matrix: each refusal answers its status and dials nothing.
import t from 'tap'
import { echoServer } from '../helpers/echo.js'
import net from 'node:net'
import { once } from 'node:events'
import { createHash, randomBytes } from 'node:crypto'
import type { TapTest } from '../helpers/yamux-pair.js'
import { StreamOpener } from '../../edge/tunnel/opener.js'
import { startTcpIngress, parseTcpMapping } from '../../edge/ingress/tcp.js'
import { TargetRegistry } from '../../agent/registry.js'
import { EpochTable, serveStream } from '../../agent/streams.js'
import { encodeOpenStatus } from '../../shared/tunnel/open-status.js'
import { edgeAgentPair, project } from './routing-helpers.js'

const P = project(1)
const OTHER = project(2)

async function setup(tt: TapTest) {
  const echoPort = await echoServer(tt)
  const { store, router, sessions, edgeSession, agentSession } = await edgeAgentPair(tt)
  const registry = new TargetRegistry()
  registry.set(P, { host: '127.0.0.1', allowedPorts: [echoPort] })
  const epochs = new EpochTable()
  const dials: string[] = []
  const outcomes: number[] = []
  agentSession.on('stream', (s) =>
    serveStream(s, {
      registry,
      epochs,
      headerTimeoutMs: 500,
      onOutcome: (o) => outcomes.push(o.status),
      dial: (target, timeoutMs) => {
        dials.push(`${target.host}:${target.port}`)
        return new Promise((resolve, reject) => {
          const c = net.connect({ host: target.host, port: target.port, allowHalfOpen: true })
          c.setTimeout(timeoutMs, () => c.destroy(new Error('timeout')))
          c.once('connect', () => resolve(c))
          c.once('error', reject)
        })
      },
    }),
  )
  const opener = new StreamOpener({ router, sessions, statusTimeoutMs: 2000 })
  return { echoPort, store, router, opener, registry, epochs, dials, outcomes, edgeSession }
}

t.test('raw TCP ingress reaches the project port through the tunnel, bytes intact', async (tt) => {
  const env = await setup(tt)
  const ingress = await startTcpIngress(
    parseTcpMapping(`127.0.0.1:0=${P}:${env.echoPort}`),
    env.opener,
  )
  tt.teardown(() => ingress.close())
  const data = randomBytes(4 * 1024 * 1024)
  const client = net.connect(ingress.address.port, '127.0.0.1')
  const chunks: Buffer[] = []
  client.on('data', (c: Buffer) => chunks.push(c))
  client.end(data)
  await once(client, 'end')
  const got = Buffer.concat(chunks)
  tt.equal(got.length, data.length, 'all bytes back')
  tt.equal(
    createHash('sha256').update(got).digest('hex'),
    createHash('sha256').update(data).digest('hex'),
  )
  const route = await env.store.getRoute(P)
  tt.equal(route?.runner, 'runner-a', 'placed on the only healthy runner, and persisted')
  tt.equal(env.epochs.get(P), route?.epoch, 'the agent holds the route epoch')
  tt.same(env.dials, [`127.0.0.1:${env.echoPort}`], 'exactly one dial, to the registered target')
})

t.test('SSRF and fencing matrix: refused with their status, nothing dialed', async (tt) => {
  const env = await setup(tt)
  await tt.rejects(
    env.opener.open({
      project: OTHER,
      service: 'port',
      port: env.echoPort,
      clientAddress: '192.0.2.1:5',
    }),
    { code: 'HOPGATE_ERR_OPEN_UNKNOWN_PROJECT' },
    'a project this runner does not host',
  )
  await tt.rejects(
    env.opener.open({ project: P, service: 'port', port: 22, clientAddress: '192.0.2.1:5' }),
    { code: 'HOPGATE_ERR_OPEN_REFUSED' },
    'a port not allowed',
  )
  await tt.rejects(
    env.opener.open({ project: P, service: 'ssh', clientAddress: '192.0.2.1:5' }),
    { code: 'HOPGATE_ERR_OPEN_REFUSED' },
    'a service not configured',
  )
  const route = await env.store.getRoute(P)
  env.epochs.observe(P, route!.epoch + 5)
  await tt.rejects(
    env.opener.open({
      project: P,
      service: 'port',
      port: env.echoPort,
      clientAddress: '192.0.2.1:5',
    }),
    { code: 'HOPGATE_ERR_OPEN_STALE_EPOCH' },
    'an epoch older than the agent holds, even after one re-resolve',
  )
  tt.same(env.dials, [], 'nothing dialed for any refusal')
})

t.test(
  'a garbled or oversize header gets status 5 and a reset; the session lives on',
  async (tt) => {
    const env = await setup(tt)
    for (const bytes of [
      Buffer.from('GET / HTTP/1.1\r\n\r\n'),
      Buffer.from([0xff, 0xff, 1, 2, 3]),
    ]) {
      const s = env.edgeSession.openStream()
      s.on('error', () => {})
      s.write(bytes)
      const [first] = (await once(s, 'data')) as [Buffer]
      tt.equal(first[0], encodeOpenStatus(5)[0], 'status: bad header')
      await new Promise((resolve) => s.once('close', resolve))
      tt.ok(s.destroyed, 'and the stream was reset')
    }
    const slow = env.edgeSession.openStream()
    slow.on('error', () => {})
    slow.write(Buffer.from([0x00]))
    const [late] = (await once(slow, 'data')) as [Buffer]
    tt.equal(late[0], 5, 'a header that never completes times out as bad header')
    tt.same(env.dials, [], 'nothing dialed')
    tt.ok((await env.edgeSession.ping()) >= 0, 'the session is untouched')
    tt.notOk(env.edgeSession.closed)
  },
)
