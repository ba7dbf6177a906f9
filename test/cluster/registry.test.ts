// The edge registry contract, against the in-memory registry and a real redis-server: register,
// list, leases that run out, leave, refusal of what nobody could dial, and (Redis) a fast typed
// failure when Redis is gone. Then two ClusterMembers over Redis see each other and a drain.
import t from 'tap'
import { ManualClock, systemClock } from '../../shared/clock.js'
import { MemoryEdgeRegistry, type EdgeRegistry } from '../../edge/cluster/registry.js'
import { RedisEdgeRegistry } from '../../edge/cluster/redis-registry.js'
import { ClusterMember } from '../../edge/cluster/member.js'
import { EmbeddedStore } from '../../edge/routing/embedded-store.js'
import { SessionTable } from '../../edge/tunnel/sessions.js'
import { tempDir } from '../helpers/echo.js'
import { redisMissing, startRedis } from '../helpers/redis.js'
import { until } from './helpers.js'
import type { TapTest } from '../helpers/yamux-pair.js'

const e = (edgeId: string, draining = false) => ({
  edgeId,
  tunnelAddress: `10.0.0.1:7443`,
  peerAddress: `10.0.0.1:7445`,
  draining,
})

async function contract(tt: TapTest, reg: EdgeRegistry, expire: () => Promise<void>) {
  await reg.put(e('edge-a'), 60_000)
  await reg.put(e('edge-b', true), 60_000)
  const list = await reg.list()
  tt.same(
    list.map((r) => [r.edgeId, r.draining]),
    [
      ['edge-a', false],
      ['edge-b', true],
    ],
    'both listed, by id, with draining',
  )
  tt.ok(
    list.every((r) => r.expiresAt > systemClock.now() - 1e9),
    'each has a lease end',
  )
  await reg.put(e('edge-b'), 60_000)
  tt.equal(
    (await reg.list()).find((r) => r.edgeId === 'edge-b')?.draining,
    false,
    'a re-put replaces',
  )
  tt.equal(await reg.remove('edge-a'), true, 'remove: was there')
  tt.equal(await reg.remove('edge-a'), false, 'remove: already gone')
  tt.same(
    (await reg.list()).map((r) => r.edgeId),
    ['edge-b'],
    'edge-a left',
  )
  await reg.put(e('edge-c'), 150)
  await expire()
  tt.same(
    (await reg.list()).map((r) => r.edgeId),
    ['edge-b'],
    'an edge whose lease ran out is not listed',
  )
  for (const bad of [
    { ...e('Edge_A') },
    { ...e('edge-a'), tunnelAddress: 'nowhere' },
    { ...e('edge-a'), peerAddress: '10.0.0.1:0' },
  ]) {
    await tt.rejects(
      reg.put(bad, 1000),
      { code: 'HOPGATE_ERR_REGISTRY_INVALID' },
      `refused ${JSON.stringify(bad)}`,
    )
  }
  await tt.rejects(reg.put(e('edge-a'), 0), { code: 'HOPGATE_ERR_REGISTRY_INVALID' }, 'zero TTL')
}

t.test('memory registry', async (tt) => {
  const clock = new ManualClock()
  const reg = new MemoryEdgeRegistry(clock)
  await contract(tt, reg, async () => clock.advance(200))
  await reg.close()
  await tt.rejects(reg.list(), { code: 'HOPGATE_ERR_STORE_CLOSED' }, 'closed')
})

t.test('redis registry', { skip: redisMissing() }, async (tt) => {
  const redis = await startRedis(tt)
  const reg = new RedisEdgeRegistry({ redis: redis.url, clock: systemClock, prefix: 'reg:' })
  tt.teardown(() => reg.close())
  await reg.ready()
  await contract(tt, reg, async () => {
    await until(
      async () => !(await reg.list()).some((r) => r.edgeId === 'edge-c'),
      'lease expiry',
      3000,
    )
  })
  const [b] = await reg.list()
  tt.ok(b!.expiresAt - systemClock.now() > 50_000, 'lease end translated into this clock')
  await redis.stop()
  const t0 = Date.now()
  await tt.rejects(reg.list(), { code: 'HOPGATE_ERR_STORE_UNAVAILABLE' }, 'Redis gone: typed error')
  await tt.rejects(reg.put(e('edge-a'), 1000), { code: 'HOPGATE_ERR_STORE_UNAVAILABLE' })
  tt.ok(Date.now() - t0 < 2500, `and fast (${Date.now() - t0} ms), no offline queue`)
})

t.test(
  'two members over Redis see each other, and a drain',
  { skip: redisMissing() },
  async (tt) => {
    const redis = await startRedis(tt)
    const store = await EmbeddedStore.open({
      stateDir: await tempDir(tt, 'routes'),
      clock: systemClock,
    })
    tt.teardown(() => store.close())
    const members: ClusterMember[] = []
    for (const id of ['edge-1', 'edge-2']) {
      const registry = new RedisEdgeRegistry({ redis: redis.url, clock: systemClock })
      tt.teardown(() => registry.close())
      const m = new ClusterMember({
        registry,
        store,
        sessions: new SessionTable(),
        self: {
          edgeId: id,
          tunnelAddress: `127.0.0.1:1${id.slice(-1)}`,
          peerAddress: '127.0.0.1:7445',
        },
        leaseTtlMs: 1000,
        refreshIntervalMs: 100,
      })
      await m.start()
      tt.teardown(() => m.stop())
      members.push(m)
    }
    const [m1, m2] = members as [ClusterMember, ClusterMember]
    await until(() => m1.peers().length === 1 && m2.peers().length === 1, 'each sees the other')
    tt.equal(m1.peers()[0]!.edgeId, 'edge-2', 'edge-1 sees edge-2')
    await m2.setDraining()
    await until(() => m1.peers()[0]?.draining === true, 'edge-1 sees edge-2 draining')
    tt.pass('draining propagates through the registry')
    await m2.stop()
    await until(() => m1.peers().length === 0, 'edge-2 left')
    tt.same(
      m1.edges().map((x) => x.edgeId),
      ['edge-1'],
      'only edge-1 remains',
    )
  },
)
