// The RouteStore contract on the embedded store (store-contract.ts, shared with the Redis store):
// compare-and-set with epochs (including 50 truly concurrent CAS), id validation, runner
// registration, leases on a ManualClock, change events; plus what only the embedded store's write
// batching can show. Persistence across restarts is in route-persistence.test.ts.
import t from 'tap'
import { ManualClock } from '../../shared/clock.js'
import { openStore, runnerInfo, tempStateDir } from './routing-helpers.js'
import { storeContract } from './store-contract.js'

storeContract(t, {
  name: 'embedded',
  open: async (tt, clock, wallClock) => openStore(tt, await tempStateDir(tt), clock, { wallClock }),
  leaseSlackMs: 0,
})

t.test('a heartbeat landing while a registration is being written is not lost', async (tt) => {
  const store = await openStore(tt, await tempStateDir(tt), new ManualClock())
  await store.putRunner('r-a', runnerInfo(), 1000)
  const reregister = store.putRunner('r-a', runnerInfo({ projects: 2 }), 100)
  // Timers of equal delay fire in order, so the store's write has started by the time this runs.
  await new Promise((r) => setTimeout(r, 0))
  const hb = await store.heartbeat('r-a', { projects: 7 }, 5000)
  tt.equal(hb.lease.expiresAt, 5000)
  const rec = await reregister
  tt.equal(rec.projects, 2)
  const live = (await store.getRunner('r-a'))!
  tt.equal(live.lease.expiresAt, 5000, 'the renewal made meanwhile is not shortened')
  tt.equal(live.projects, 2, 'the registration, committed last, wins the reported fields')
  tt.ok(Object.isFrozen(live) && Object.isFrozen(live.lease), 'shared records are frozen')
})
