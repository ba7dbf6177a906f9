// The embedded store across restarts: what survives a close and reopen, how routes.json looks
// (format, 0600), that a damaged file stops startup with a typed error naming it, that a failed
// write rejects and changes nothing, and that a burst of CAS shares one durable write.
import t from 'tap'
import { mkdir, readFile, readdir, rmdir, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ManualClock } from '../../shared/clock.js'
import { isHopgateError } from '../../shared/errors.js'
import { EmbeddedStore } from '../../edge/routing/embedded-store.js'
import { Router } from '../../edge/routing/router.js'
import { openStore, project, runnerInfo, tempStateDir } from './routing-helpers.js'

const P1 = project(1)
const P2 = project(2)

t.test('routes and runners survive close and reopen; leases do not', async (tt) => {
  const dir = await tempStateDir(tt)
  const clock = new ManualClock()
  const a = await openStore(tt, dir, clock, { wallClock: () => 42 })
  const reg = await a.putRunner('r-a', runnerInfo({ directAddress: '10.0.0.5:7443' }), 10_000)
  await a.casRoute(P1, null, { runner: 'r-a', state: 'active' })
  const p1 = await a.casRoute(P1, 1, { runner: 'r-a', state: 'draining' })
  const p2 = await a.casRoute(P2, null, { runner: 'r-b', state: 'moving' })
  await a.close()

  const b = await openStore(tt, dir, clock)
  tt.same(await b.listRoutes(), [p1, p2])
  const back = await b.getRunner('r-a')
  tt.same({ ...back, lease: null }, { ...reg, lease: null }, 'every reported field survives')
  tt.notOk(new Router({ store: b, clock }).isHealthy(back!), 'a lease does not outlive a restart')
  // The epoch sequence continues from the file: fencing never reuses an epoch after a restart.
  tt.equal((await b.casRoute(P1, 2, { runner: 'r-c', state: 'active' })).epoch, 3)
  await tt.rejects(b.casRoute(P1, 2, { runner: 'r-d', state: 'active' }), {
    code: 'HOPGATE_ERR_ROUTE_CONFLICT',
  })
})

t.test('routes.json: mode 0600, versioned, sorted, no temp file left', async (tt) => {
  const dir = await tempStateDir(tt)
  const store = await openStore(tt, dir, new ManualClock(), { wallClock: () => 7 })
  await store.casRoute(P2, null, { runner: 'r-a', state: 'active' })
  await store.casRoute(P1, null, { runner: 'r-a', state: 'active' })
  await store.putRunner('r-a', runnerInfo(), 1000)
  const path = join(dir, 'routes.json')
  tt.equal((await stat(path)).mode & 0o777, 0o600)
  tt.same(await readdir(dir), ['routes.json'])
  const doc = JSON.parse(await readFile(path, 'utf8'))
  tt.match(doc, { format: 'hopgate.routes', version: 1 })
  tt.same(
    doc.routes.map((r: { project: string }) => r.project),
    [P1, P2],
  )
  tt.same(doc.routes[0], { project: P1, runner: 'r-a', epoch: 1, state: 'active', updatedAt: 7 })
  tt.equal(doc.runners[0].runnerId, 'r-a')
  tt.notOk('lease' in doc.runners[0], 'leases are not persisted')

  // A leftover temp file from a crash, with a lax mode, is neither loaded nor allowed to leak.
  await store.close()
  await writeFile(`${path}.tmp`, 'garbage', { mode: 0o644 })
  const again = await openStore(tt, dir, new ManualClock())
  await again.casRoute(P1, 1, { runner: 'r-b', state: 'active' })
  tt.equal((await stat(path)).mode & 0o777, 0o600)
  tt.same(await readdir(dir), ['routes.json'])
})

t.test('a damaged routes.json is a typed startup error naming the file', async (tt) => {
  const dir = await tempStateDir(tt)
  const path = join(dir, 'routes.json')
  const good = { format: 'hopgate.routes', version: 1, routes: [], runners: [] }
  const route = { project: P1, runner: 'r-a', epoch: 1, state: 'active', updatedAt: 0 }
  const cases: Array<[string, string]> = [
    ['truncated JSON', '{"format":"hopgate.routes","vers'],
    ['empty file', ''],
    ['not an object', '[]'],
    ['wrong format', JSON.stringify({ ...good, format: 'other' })],
    ['future version', JSON.stringify({ ...good, version: 2 })],
    [
      'uppercase project',
      JSON.stringify({ ...good, routes: [{ ...route, project: P1.toUpperCase() + 'A' }] }),
    ],
    ['epoch 0', JSON.stringify({ ...good, routes: [{ ...route, epoch: 0 }] })],
    ['unknown state', JSON.stringify({ ...good, routes: [{ ...route, state: 'lost' }] })],
    ['duplicate project', JSON.stringify({ ...good, routes: [route, { ...route, epoch: 2 }] })],
  ]
  for (const [name, text] of cases) {
    await writeFile(path, text)
    const err = await EmbeddedStore.open({ stateDir: dir, clock: new ManualClock() }).catch(
      (e) => e,
    )
    tt.ok(isHopgateError(err, 'HOPGATE_ERR_STORE_CORRUPT'), `${name}: STORE_CORRUPT`)
    tt.match(err.message, path, `${name}: names the file`)
    tt.equal(err.exitCode, 65)
    tt.equal(await readFile(path, 'utf8'), text, `${name}: the file is left as it was`)
  }
})

t.test('a failed write rejects every op in its batch and changes nothing', async (tt) => {
  const dir = await tempStateDir(tt)
  const store = await openStore(tt, dir, new ManualClock())
  const r1 = await store.casRoute(P1, null, { runner: 'r-a', state: 'active' })
  // A directory where the temp file goes fails the write even for root (EISDIR).
  const tmp = join(dir, 'routes.json.tmp')
  await mkdir(tmp)
  const results = await Promise.allSettled([
    store.casRoute(P1, 1, { runner: 'r-b', state: 'active' }),
    store.casRoute(P1, 1, { runner: 'r-c', state: 'active' }),
  ])
  for (const r of results) {
    tt.equal(r.status, 'rejected')
    if (r.status === 'rejected') {
      tt.ok(isHopgateError(r.reason, 'HOPGATE_ERR_STORE_IO'), 'the loser too: its winner is gone')
      tt.equal(r.reason.httpStatus, 503)
    }
  }
  tt.same(await store.getRoute(P1), r1, 'readers never saw the change')
  await rmdir(tmp)
  tt.equal((await store.casRoute(P1, 1, { runner: 'r-d', state: 'active' })).epoch, 2, 'recovers')
})

t.test('a burst of changes shares one durable write, and each CAS waits for it', async (tt) => {
  const dir = await tempStateDir(tt)
  const store = await openStore(tt, dir, new ManualClock(), { flushIntervalMs: 200 })
  await store.casRoute(P1, null, { runner: 'r-a', state: 'active' }) // sets the pacing window
  const writes = store.writeCount
  const started = performance.now()
  const burst = await Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      store.casRoute(project(10 + i), null, { runner: 'r-a', state: 'active' }),
    ),
  )
  tt.ok(performance.now() - started >= 150, 'the burst waited for the pacing window')
  tt.equal(store.writeCount - writes, 1, 'twenty changes, one fsynced write')
  tt.equal(burst.length, 20)
  // Every CAS resolved only after its change was on disk.
  const doc = JSON.parse(await readFile(join(dir, 'routes.json'), 'utf8'))
  tt.equal(doc.routes.length, 21)

  // Losing CAS and reads cost no write at all.
  const quiet = store.writeCount
  await store.casRoute(P1, 9, { runner: 'r-a', state: 'active' }).catch(() => undefined)
  await store.listRoutes()
  tt.equal(store.writeCount, quiet)
})
