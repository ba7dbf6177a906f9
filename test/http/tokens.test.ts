// User tokens (edge/auth/user-tokens.ts) and the access cache (edge/auth/access-cache.ts) on their
// own: mint and verify, every way a token can be refused (malformed, other key, tampered payload,
// expired, future iat), the key file's mode and reuse; cache TTLs on an injected clock, and a
// store change dropping the cached answer at once.
import t from 'tap'
import { readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { createPrivateKey, sign, generateKeyPairSync } from 'node:crypto'
import { tempDir } from '../helpers/echo.js'
import { UserTokens, USER_TOKEN_KEY_FILE } from '../../edge/auth/user-tokens.js'
import { AccessCache } from '../../edge/auth/access-cache.js'
import { EmbeddedAccessStore } from '../../edge/auth/embedded-access.js'

const P = '0f8fad5b-d9cb-469f-a165-70867728950e'

t.test('mint and verify; refusals are typed', async (tt) => {
  const dir = await tempDir(tt, 'tok')
  const tokens = await UserTokens.open(dir)
  tt.equal((await stat(join(dir, USER_TOKEN_KEY_FILE))).mode & 0o777, 0o600, 'key file is 0600')
  const now = Date.UTC(2026, 0, 1)
  const { token, claims } = tokens.mint({ account: 'alice', ttlMs: 60_000, now })
  tt.match(token, /^hgu1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{86}$/)
  tt.equal(tokens.verify(token, now + 1000).sub, 'alice')
  tt.equal(claims.exp - claims.iat, 60)
  const again = await UserTokens.open(dir)
  tt.equal(again.verify(token, now).sub, 'alice', 'the same key is loaded again')
  const other = await UserTokens.open(await tempDir(tt, 'tok2'))
  tt.throws(() => other.verify(token, now), { code: 'HOPGATE_ERR_TOKEN_BAD_SIGNATURE' })
  tt.throws(() => tokens.verify(token, now + 60_000), { code: 'HOPGATE_ERR_TOKEN_EXPIRED' })
  tt.throws(
    () => tokens.verify(token, now - 120_000),
    { code: 'HOPGATE_ERR_TOKEN_EXPIRED' },
    'iat in the future',
  )
  const [pfx, payload, sig] = token.split('.')
  const forged = Buffer.from(
    Buffer.from(payload!, 'base64url').toString().replace('alice', 'mallo'),
  ).toString('base64url')
  tt.throws(() => tokens.verify(`${pfx}.${forged}.${sig}`, now), {
    code: 'HOPGATE_ERR_TOKEN_BAD_SIGNATURE',
  })
  for (const bad of [
    '',
    'hgu1',
    'hgu1..',
    'hgu2.a.b',
    `${token}x`,
    `Bearer ${token}`,
    'x'.repeat(5000),
  ]) {
    tt.throws(
      () => tokens.verify(bad, now),
      { code: 'HOPGATE_ERR_TOKEN_MALFORMED' },
      JSON.stringify(bad.slice(0, 20)),
    )
  }
  // Signed with the edge's own key but breaking the schema (uppercase account, short jti): the
  // signature verifies, the payload is still refused.
  const edgeKey = createPrivateKey(await readFile(join(dir, USER_TOKEN_KEY_FILE), 'utf8'))
  const body = Buffer.from(
    JSON.stringify({ v: 1, sub: 'ALICE', iat: 1, exp: 9e9, jti: 'x' }),
  ).toString('base64url')
  const s2 = sign(null, Buffer.from(`hgu1.${body}`), edgeKey).toString('base64url')
  tt.throws(() => tokens.verify(`hgu1.${body}.${s2}`, now), { code: 'HOPGATE_ERR_TOKEN_MALFORMED' })
  const { privateKey } = generateKeyPairSync('ed25519')
  const s3 = sign(null, Buffer.from(`hgu1.${payload}`), privateKey).toString('base64url')
  tt.throws(() => tokens.verify(`hgu1.${payload}.${s3}`, now), {
    code: 'HOPGATE_ERR_TOKEN_BAD_SIGNATURE',
  })
  tt.throws(() => tokens.mint({ account: 'Not Valid' }), {
    code: 'HOPGATE_ERR_ACCESS_ACCOUNT_INVALID',
  })
  tt.throws(() => tokens.mint({ account: 'a', ttlMs: 8 * 86_400_000 }), {
    code: 'HOPGATE_ERR_CONFIG_INVALID',
  })
})

t.test('access cache: allow 90 s, deny 15 s, dropped at once on a change', async (tt) => {
  const store = await EmbeddedAccessStore.open({ stateDir: await tempDir(tt, 'acc') })
  tt.teardown(() => store.close())
  let lookups = 0
  const counting = new Proxy(store, {
    get(target, prop, recv) {
      if (prop === 'isCollaborator') {
        return (p: string, a: string) => {
          lookups++
          return target.isCollaborator(p, a)
        }
      }
      const v = Reflect.get(target, prop, recv) as unknown
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v
    },
  })
  let now = 1000
  const cache = new AccessCache({ store: counting, now: () => now })
  tt.teardown(() => cache.close())

  tt.equal(await cache.isAllowed(P, 'bob'), false)
  tt.equal(await cache.isAllowed(P, 'bob'), false)
  tt.equal(lookups, 1, 'a deny is cached')
  now += 15_001
  tt.equal(await cache.isAllowed(P, 'bob'), false)
  tt.equal(lookups, 2, 'and expires after 15 s')

  await store.grant(P, 'bob')
  tt.equal(await cache.isAllowed(P, 'bob'), true, 'a grant is seen at once')
  tt.equal(lookups, 3)
  now += 89_000
  tt.equal(await cache.isAllowed(P, 'bob'), true)
  tt.equal(lookups, 3, 'an allow is cached for 90 s')
  now += 1_001
  await cache.isAllowed(P, 'bob')
  tt.equal(lookups, 4, 'and expires after it')

  await store.revoke(P, 'bob')
  tt.equal(await cache.isAllowed(P, 'bob'), false, 'a revoke is seen at once')

  // A lookup in flight when the change lands must not cache its (now stale) answer.
  await store.grant(P, 'carol')
  const pending = cache.isAllowed(P, 'carol')
  await store.revoke(P, 'carol')
  await pending
  tt.equal(await cache.isAllowed(P, 'carol'), false, 'no stale allow after a racing revoke')
})
