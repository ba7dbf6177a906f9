import t from 'tap'
import { Backoff, sleep } from '../shared/backoff.js'
import { ManualClock } from '../shared/clock.js'
import { isHopgateError } from '../shared/errors.js'

t.test(
  'ceilings double from the base up to the cap, delays are full jitter below them',
  async (tt) => {
    const b = new Backoff({ baseMs: 250, capMs: 30_000, random: () => 0.999999 })
    const delays = Array.from({ length: 10 }, () => b.next())
    tt.same(
      delays,
      [249, 499, 999, 1999, 3999, 7999, 15999, 29999, 29999, 29999],
      'just under 250 x 2^n, capped at 30 s',
    )
    const zero = new Backoff({ random: () => 0 })
    tt.equal(zero.next(), 0, 'full jitter reaches 0')
  },
)

t.test('reset starts again from the base', async (tt) => {
  const b = new Backoff({ baseMs: 100, capMs: 1000, random: () => 0.5 })
  b.next()
  b.next()
  b.next()
  tt.equal(b.ceilingMs, 800)
  b.reset()
  tt.equal(b.ceilingMs, 100)
  tt.equal(b.next(), 50)
})

t.test('a thousand attempts never overflow past the cap', async (tt) => {
  const b = new Backoff({ baseMs: 1, capMs: 10_000, random: () => 0.999 })
  let max = 0
  for (let i = 0; i < 1000; i++) max = Math.max(max, b.next())
  tt.ok(max < 10_000 && Number.isFinite(max), `max ${max}`)
})

t.test('bad bounds are refused', async (tt) => {
  tt.throws(() => new Backoff({ baseMs: 0 }), RangeError)
  tt.throws(() => new Backoff({ baseMs: 500, capMs: 100 }), RangeError)
})

t.test('sleep waits on the injected clock and honours AbortSignal', async (tt) => {
  const clock = new ManualClock()
  let done = false
  const p = sleep(1000, { clock }).then(() => (done = true))
  clock.advance(999)
  await Promise.resolve()
  tt.notOk(done, 'not yet at 999 ms')
  clock.advance(1)
  await p
  tt.ok(done, 'resolved at 1000 ms')

  const ac = new AbortController()
  const aborted = sleep(1000, { clock, signal: ac.signal })
  ac.abort()
  const err = await aborted.catch((e: unknown) => e)
  tt.ok(isHopgateError(err, 'HOPGATE_ERR_ABORTED'), 'typed abort error')
  tt.equal(clock.pending, 0, 'the timer was cleared')
  await tt.rejects(sleep(5, { clock, signal: ac.signal }), { code: 'HOPGATE_ERR_ABORTED' })
})
