import t from 'tap'
import { once } from 'node:events'
import { SessionTable, type AgentSession } from '../../edge/tunnel/sessions.js'
import { Session } from '../../shared/yamux/index.js'
import { duplexPair } from '../helpers/duplex-pair.js'
import { testConfig } from '../helpers/yamux-pair.js'

function pair(): { edge: Session; agent: Session } {
  const [a, b] = duplexPair()
  return {
    agent: new Session(a, { role: 'client', config: testConfig }),
    edge: new Session(b, { role: 'server', config: testConfig }),
  }
}

function entry(runnerId: string, slot: number, session: Session): AgentSession {
  return { runnerId, slot, connector: 'reverse', session, since: Date.now() }
}

t.test('new streams go to the newest live session of a runner', async (tt) => {
  const table = new SessionTable()
  const s0 = pair()
  const s1 = pair()
  tt.teardown(() => [s0, s1].forEach((p) => (p.edge.close(), p.agent.close())))
  table.add(entry('r1', 0, s0.edge))
  table.add(entry('r1', 1, s1.edge))
  tt.equal(table.pick('r1')?.session, s1.edge, 'newest first')
  tt.equal(table.size, 2)
  s1.edge.close()
  await new Promise((r) => setImmediate(r))
  tt.equal(table.pick('r1')?.session, s0.edge, 'falls back when the newest closed')
  tt.equal(table.pick('nobody'), undefined)
})

t.test('a new session in a held slot supersedes the old one with GoAway', async (tt) => {
  const table = new SessionTable()
  const old = pair()
  const fresh = pair()
  tt.teardown(() => [old, fresh].forEach((p) => (p.edge.close(), p.agent.close())))
  const removed: string[] = []
  table.on('removed', (e, reason) => removed.push(`${e.slot}:${reason}`))
  table.add(entry('r1', 0, old.edge))
  const goaway = once(old.agent, 'goaway')
  table.add(entry('r1', 0, fresh.edge))
  tt.same(removed, ['0:superseded'])
  tt.equal(table.sessions('r1').length, 1)
  tt.equal(table.pick('r1')?.session, fresh.edge)
  const [code] = await goaway
  tt.equal(code, 0, 'the agent was told to open nothing more on the old session')
  tt.notOk(old.edge.closed, 'the old session lives on for its open streams')
})

t.test('revoking a runner closes all its sessions at once', async (tt) => {
  const table = new SessionTable()
  const a = pair()
  const b = pair()
  tt.teardown(() => [a, b].forEach((p) => (p.edge.close(), p.agent.close())))
  table.add(entry('r1', 0, a.edge))
  table.add(entry('r1', 1, b.edge))
  const closed = Promise.all([once(a.agent, 'close'), once(b.agent, 'close')])
  tt.equal(table.revoke('r1'), 2)
  await closed
  tt.equal(table.size, 0)
  tt.same(table.runners(), [])
})
