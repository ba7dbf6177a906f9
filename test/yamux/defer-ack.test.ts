// YamuxStream.deferAck(): an accepting listener that answers every stream soon anyway (the agent's
// open status) lets its ACK ride on the stream's first frame instead of a bare ACK frame. The
// opener sees the open acknowledged only then; a reset before any answer is a refusal.
import t from 'tap'
import { once } from 'node:events'
import { connPairs } from '../helpers/conn-pairs.js'
import { sessionPair } from '../helpers/yamux-pair.js'
import type { YamuxStream } from '../../shared/yamux/index.js'
import { isHopgateError } from '../../shared/errors.js'

const maker = connPairs[0]!
const settle = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r))
}

t.test('without deferAck the ACK goes out at once', async (tt) => {
  const p = await sessionPair(maker)
  tt.teardown(() => p.close())
  p.server.on('stream', () => {})
  const s = p.client.openStream()
  s.on('error', () => {})
  await settle()
  tt.equal(p.client.stats().unacknowledgedOpens, 0, 'acknowledged with no data sent')
  tt.ok(s.established, 'the opener sees it established')
})

t.test('deferAck: the ACK rides on the first data frame', async (tt) => {
  const p = await sessionPair(maker)
  tt.teardown(() => p.close())
  let accepted: YamuxStream | undefined
  p.server.on('stream', (s) => {
    accepted = s.deferAck()
  })
  const s = p.client.openStream()
  s.write('header')
  await settle()
  tt.ok(accepted, 'the server accepted the stream')
  tt.equal(p.client.stats().unacknowledgedOpens, 1, 'no bare ACK was sent')
  tt.notOk(s.established, 'not yet established for the opener')
  const [chunk] = (await Promise.all([
    once(s, 'data'),
    Promise.resolve(accepted!.write(Buffer.from([0]))),
  ])) as [Buffer[], boolean]
  tt.same([...chunk[0]!], [0], 'the status byte arrives')
  tt.ok(s.established, 'and with it the ACK')
  tt.equal(p.client.stats().unacknowledgedOpens, 0, 'the backlog slot is free again')
  s.destroy()
  accepted!.destroy()
})

t.test('deferAck then reset: the opener sees a refusal', async (tt) => {
  const p = await sessionPair(maker)
  tt.teardown(() => p.close())
  p.server.on('stream', (s) => {
    s.deferAck()
    setImmediate(() => s.destroy())
  })
  const s = p.client.openStream()
  const [err] = (await once(s, 'error')) as [Error]
  tt.ok(isHopgateError(err, 'HOPGATE_ERR_YAMUX_STREAM_REFUSED'), `refused (${String(err)})`)
  tt.equal(p.client.stats().unacknowledgedOpens, 0, 'the backlog slot is free again')
})
