// Pre-auth limits on a manual clock: total and per-source caps, login grace, auth tries, the
// penalty box and its expiry, and that logged-in connections stop counting.
import t from 'tap'
import { ManualClock } from '../../shared/clock.js'
import { PreAuthLimiter } from '../../edge/ssh/limits.js'
import { isHopgateError } from '../../shared/errors.js'

const refusal = (fn: () => unknown): string | undefined => {
  try {
    fn()
    return undefined
  } catch (err) {
    return isHopgateError(err) ? err.code : 'untyped'
  }
}

t.test('caps: 100 in all, 10 per source; login releases a slot', async (tt) => {
  const clock = new ManualClock()
  const l = new PreAuthLimiter(clock)
  const tickets = []
  for (let i = 0; i < 10; i++) tickets.push(l.admit('1.1.1.1', () => {}))
  tt.equal(
    refusal(() => l.admit('1.1.1.1', () => {})),
    'HOPGATE_ERR_SSH_PREAUTH_LIMIT',
    '11th from one source',
  )
  for (const t2 of tickets.splice(0)) t2.close()
  for (let i = 0; i < 100; i++) tickets.push(l.admit(`2.2.${i >> 3}.${i}`, () => {}))
  tt.equal(l.pending, 100)
  tt.equal(
    refusal(() => l.admit('2.2.0.0', () => {})),
    'HOPGATE_ERR_SSH_PREAUTH_LIMIT',
    '101st in all, from a source as heavy as any',
  )
  tickets[0]!.authenticated()
  tt.equal(l.pending, 99, 'a login stops counting')
  tt.equal(
    refusal(() => l.admit('2.2.0.1', () => {})),
    undefined,
    'and frees a slot',
  )
  tickets[0]!.close()
  tt.equal(l.pending, 100, 'closing a logged-in connection changes nothing')
})

t.test('login grace fires once, only while pending', async (tt) => {
  const clock = new ManualClock()
  const l = new PreAuthLimiter(clock)
  let fired = 0
  const a = l.admit('1.1.1.1', () => fired++)
  const b = l.admit('1.1.1.2', () => fired++)
  b.authenticated()
  clock.advance(19_999)
  tt.equal(fired, 0, 'not before 20 s')
  clock.advance(1)
  tt.equal(fired, 1, 'at 20 s, only for the one that did not log in')
  a.close()
})

t.test('six tries, then the penalty box, which expires', async (tt) => {
  const clock = new ManualClock()
  const l = new PreAuthLimiter(clock, { penaltyAfterFailures: 3, penaltyMs: 60_000 })
  for (let round = 0; round < 3; round++) {
    const c = l.admit('6.6.6.6', () => {})
    for (let i = 1; i < 6; i++) tt.equal(c.failedAttempt(), undefined, `try ${i} allowed`)
    tt.equal(c.failedAttempt(), 'HOPGATE_ERR_SSH_TOO_MANY_TRIES', 'the 6th refused attempt ends it')
    c.close()
  }
  tt.equal(
    refusal(() => l.admit('6.6.6.6', () => {})),
    'HOPGATE_ERR_SSH_PENALTY',
    'penalised after 3 failed connections',
  )
  tt.equal(
    refusal(() => l.admit('7.7.7.7', () => {})),
    undefined,
    'other sources are not',
  )
  clock.advance(60_000)
  tt.equal(
    refusal(() => l.admit('6.6.6.6', () => {})),
    undefined,
    'the penalty expires',
  )
})

t.test(
  'failures outside the window do not add up; a success with earlier refusals is no failure',
  async (tt) => {
    const clock = new ManualClock()
    const l = new PreAuthLimiter(clock, { penaltyAfterFailures: 2, penaltyWindowMs: 10_000 })
    const a = l.admit('5.5.5.5', () => {})
    a.failedAttempt()
    a.close()
    clock.advance(10_001)
    const b = l.admit('5.5.5.5', () => {})
    b.failedAttempt()
    b.close()
    tt.equal(
      refusal(() => l.admit('5.5.5.5', () => {}).close()),
      undefined,
      'two failures 10 s apart',
    )
    const c = l.admit('5.5.5.5', () => {})
    c.failedAttempt()
    c.authenticated()
    c.close()
    tt.equal(
      refusal(() => l.admit('5.5.5.5', () => {})),
      undefined,
      'an unknown key offered before the right one is fine',
    )
  },
)

t.test('at the cap a newcomer evicts the heaviest source, never a lighter one', async (tt) => {
  const clock = new ManualClock()
  const l = new PreAuthLimiter(clock, { maxUnauthenticated: 6, maxUnauthenticatedPerSource: 4 })
  const expelled: string[] = []
  const flood = [0, 1, 2, 3].map((i) => l.admit('6.6.6.6', (c) => expelled.push(`flood${i}:${c}`)))
  const other = [0, 1].map((i) => l.admit('7.7.7.7', (c) => expelled.push(`other${i}:${c}`)))
  tt.equal(l.pending, 6)
  const user = l.admit('1.1.1.1', () => expelled.push('user'))
  tt.same(
    expelled,
    ['flood0:HOPGATE_ERR_SSH_PREAUTH_LIMIT'],
    'the oldest of the heaviest source goes',
  )
  tt.equal(l.pending, 6, 'the slot was handed over')
  flood[0]!.close()
  tt.equal(l.pending, 6, 'closing the evicted one does not release twice')
  l.admit('8.8.8.8', () => {})
  tt.same(
    expelled,
    ['flood0:HOPGATE_ERR_SSH_PREAUTH_LIMIT', 'flood1:HOPGATE_ERR_SSH_PREAUTH_LIMIT'],
    'the flood again',
  )
  tt.equal(
    refusal(() => l.admit('7.7.7.7', () => {})),
    'HOPGATE_ERR_SSH_PREAUTH_LIMIT',
    'a source as heavy as the heaviest cannot evict',
  )
  user.close()
  for (const t2 of [...flood, ...other]) t2.close()
})
