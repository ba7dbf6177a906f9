// The rest of the shared state in Redis, opened through the factory (edge/stores.ts) as two edges
// would: ACL and SSH keys, join tokens (hashed, spent once across edges), revocations pushed to
// every edge; the store choice parser; and `startEdge` on Redis.
import t from 'tap'
import { ManualClock } from '../../shared/clock.js'
import { wallClock as systemClock } from '../../certs/state.js'
import { isHopgateError } from '../../shared/errors.js'
import { consumeJoinToken, createJoinToken } from '../../certs/tokens.js'
import { openStores, parseStoreChoice, type EdgeStores } from '../../edge/stores.js'
import type { AccessChange } from '../../edge/auth/access-store.js'
import { redisAvailable, startRedis } from '../helpers/redis.js'
import { tempDir } from '../helpers/echo.js'
import type { TapTest } from './routing-helpers.js'

const P = '0b2e3c4d-1111-4222-8333-944455556666'
const FP = 'SHA256:' + 'A'.repeat(43)
const CA_FP = Buffer.alloc(32, 7).toString('base64url')

t.test('store choice: embedded or a redis URL, typed refusal otherwise', async (tt) => {
  tt.same(parseStoreChoice('embedded'), { kind: 'embedded' })
  tt.same(parseStoreChoice('redis://10.0.0.5:6379/2'), {
    kind: 'redis',
    url: 'redis://10.0.0.5:6379/2',
  })
  tt.same(parseStoreChoice('rediss://r.example:6380'), {
    kind: 'redis',
    url: 'rediss://r.example:6380',
  })
  for (const bad of ['redis', 'http://x:1', 'redis://', 'redis://h:1/db', 'postgres://h/x']) {
    tt.ok(
      isHopgateError(
        (() => {
          try {
            parseStoreChoice(bad)
          } catch (e) {
            return e
          }
        })(),
        'HOPGATE_ERR_CONFIG_INVALID',
      ),
      `refuses ${bad}`,
    )
  }
})

if (redisAvailable(t)) {
  const server = await startRedis(t)
  let n = 0
  const pair = async (tt: TapTest): Promise<[EdgeStores, EdgeStores]> => {
    const keyPrefix = `shared${n++}:`
    const open = async (edgeId: string) => {
      const stores = await openStores({
        store: server.url,
        stateDir: await tempDir(tt, 'redis-shared'),
        edgeId,
        keyPrefix,
        commandTimeoutMs: 5000, // timing is not under test here
      })
      tt.teardown(() => stores.close())
      return stores
    }
    return [await open('edge-a'), await open('edge-b')]
  }

  t.test(
    'ACL and SSH keys: shared, typed refusals, changes heard by the other edge',
    async (tt) => {
      const [a, b] = await pair(tt)
      tt.equal(a.choice.kind, 'redis')
      const heard: AccessChange[] = []
      b.access.onChange((c) => heard.push(c))
      tt.equal(await b.access.isCollaborator(P, 'alice'), false)
      tt.equal(await a.access.grant(P, 'alice'), true)
      tt.equal(await b.access.grant(P, 'alice'), false, 'idempotent across edges')
      tt.equal(await a.access.grant(P, 'bob'), true)
      tt.equal(await b.access.isCollaborator(P, 'alice'), true)
      tt.same(await b.access.collaborators(P), ['alice', 'bob'])
      tt.same(await b.access.projectsOf('bob'), [P])
      tt.equal(await b.access.revoke(P, 'bob'), true)
      tt.equal(await a.access.revoke(P, 'bob'), false)
      tt.same(await a.access.projectsOf('bob'), [])
      await tt.rejects(a.access.grant('NOT-A-UUID', 'alice'), {
        code: 'HOPGATE_ERR_ROUTE_PROJECT_INVALID',
      })
      await tt.rejects(a.access.grant(P, 'Alice'), { code: 'HOPGATE_ERR_ACCESS_ACCOUNT_INVALID' })

      const key = { fingerprint: FP, type: 'ssh-ed25519', publicKey: 'AAAA', comment: 'x' }
      const added = await a.access.addSshKey({ account: 'alice', ...key })
      tt.equal(added.account, 'alice')
      tt.same(
        await b.access.addSshKey({ account: 'alice', ...key }),
        added,
        'adding again keeps it',
      )
      await tt.rejects(b.access.addSshKey({ account: 'bob', ...key }), {
        code: 'HOPGATE_ERR_SSH_KEY_TAKEN',
      })
      await tt.rejects(a.access.addSshKey({ account: 'bob', ...key, fingerprint: 'md5:x' }), {
        code: 'HOPGATE_ERR_SSH_KEY_INVALID',
      })
      tt.same(await b.access.findSshKey(FP), added)
      tt.same(await b.access.listSshKeys('alice'), [added])
      tt.equal(await b.access.removeSshKey('bob', FP), false, "bob cannot remove alice's key")
      tt.equal(await b.access.removeSshKey('alice', FP), true)
      tt.same(await a.access.listSshKeys('alice'), [])
      tt.equal(await a.access.findSshKey(FP), undefined)

      // b hears a's changes by pub/sub and its own directly: five changes in all.
      const until = Date.now() + 2000
      while (heard.length < 5 && Date.now() < until) await new Promise((r) => setTimeout(r, 10))
      const tally = heard.map((c) => (c.kind === 'acl' ? `acl:${c.account}` : `key:${c.account}`))
      tt.same(tally.sort(), ['acl:alice', 'acl:bob', 'acl:bob', 'key:alice', 'key:alice'])
      tt.ok(heard.every((c) => (c.kind === 'ssh-key' ? c.fingerprint === FP : c.project === P)))
    },
  )

  t.test('join tokens: stored hashed, spent once across two edges', async (tt) => {
    const [a, b] = await pair(tt)
    const clock = systemClock
    const wins = []
    for (let i = 0; i < 10; i++) {
      const token = await createJoinToken(a.tokens, {
        runnerId: `runner-${i}`,
        ttlMs: 60_000,
        edgeCaFingerprint: CA_FP,
        clock,
      })
      const secret = token.split('.')[2]!
      const keys = await a.redis!.cmd.keys('*')
      const values = await Promise.all(
        keys.filter((k) => k.includes('token:')).map((k) => a.redis!.cmd.hgetall(k)),
      )
      if (JSON.stringify({ keys, values }).includes(secret)) tt.fail('the secret reached Redis')
      const results = await Promise.allSettled([
        consumeJoinToken(a.tokens, token, clock),
        consumeJoinToken(b.tokens, token, clock),
      ])
      const won = results.filter((r) => r.status === 'fulfilled')
      const lost = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []))
      wins.push(won.length)
      if (lost.length !== 1 || !isHopgateError(lost[0], 'HOPGATE_ERR_JOIN_TOKEN_USED')) {
        tt.fail(`round ${i}: loser got ${String(lost[0])}`)
      }
    }
    tt.same(wins, Array(10).fill(1), 'each of 10 tokens raced by two edges: exactly one join')
    tt.equal((await b.tokens.list()).length, 10)
    tt.ok(
      (await b.tokens.list()).every((r) => r.usedAt !== undefined),
      'all marked used',
    )

    const manual = new ManualClock()
    manual.advance(Date.now()) // an epoch: Redis expires the record a week after the token
    const short = await createJoinToken(a.tokens, {
      runnerId: 'runner-x',
      ttlMs: 1000,
      edgeCaFingerprint: CA_FP,
      clock: manual,
    })
    manual.advance(1000)
    await tt.rejects(consumeJoinToken(b.tokens, short, manual), {
      code: 'HOPGATE_ERR_JOIN_TOKEN_EXPIRED',
    })
    const unknown = `hg1.${CA_FP}.${Buffer.alloc(16, 3).toString('base64url')}`
    await tt.rejects(consumeJoinToken(b.tokens, unknown, systemClock), {
      code: 'HOPGATE_ERR_JOIN_TOKEN_INVALID',
    })
    const pttl = await a.redis!.cmd.pttl(
      a.redis!.key('token:' + (await a.tokens.list())[0]!.secretHash),
    )
    tt.ok(pttl > 0, 'token records expire on their own')
  })

  t.test('revocations: every edge knows at once, and is told', async (tt) => {
    const [a, b] = await pair(tt)
    const told: string[] = []
    b.onRevoked((id) => told.push(id))
    tt.equal(await a.revocation.revoke('runner-z', { reason: 'leaked' }), true)
    tt.equal(await a.revocation.revoke('runner-z'), false, 'already revoked')
    tt.ok(a.revocation.isRevoked('runner-z'))
    const until = Date.now() + 1000
    while (!b.revocation.isRevoked('runner-z') && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 5))
    }
    tt.ok(b.revocation.isRevoked('runner-z'), 'edge b denies it within 1 s, without a reload')
    tt.same(told, ['runner-z'], 'and its listener could close the sessions')
    tt.equal(await b.revocation.revokeSerial('0a:bc:12'), true)
    await a.revocation.reload()
    tt.ok(a.revocation.isRevoked('runner-q', '0A:BC:12'), 'serials too (after a reload)')
    tt.match(a.revocation.list(), [
      { kind: 'runner', value: 'runner-z', reason: 'leaked' },
      { kind: 'serial', value: '0ABC12' },
    ])
    tt.equal(await b.revocation.unrevoke('runner-z'), true)
    tt.notOk(b.revocation.isRevoked('runner-z'))
    await a.revocation.reload()
    tt.notOk(a.revocation.isRevoked('runner-z'), 'unrevoked everywhere')
  })

  t.test('Redis down at startup: a typed refusal, nothing left open', async (tt) => {
    const err = await openStores({
      store: 'redis://127.0.0.1:1',
      stateDir: await tempDir(tt, 'redis-shared'),
      edgeId: 'edge-a',
    }).catch((e: unknown) => e)
    tt.ok(isHopgateError(err, 'HOPGATE_ERR_STORE_UNAVAILABLE'))
  })
}
