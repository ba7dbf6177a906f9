// certs/tokens.ts: token format and parsing, single use (also under racing consumers), expiry on
// a ManualClock, wrong secrets, malformed and tampered tokens, and the file store keeping only
// hashes in a 0600 file that survives reopening.
import t from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import { readFile, stat, writeFile } from 'node:fs/promises'
import {
  FileTokenStore,
  MemoryTokenStore,
  consumeJoinToken,
  createJoinToken,
  parseJoinToken,
  type TokenStore,
} from '../../certs/tokens.js'
import { tempStateDir, wallManualClock } from './_helpers.js'

const FP = createHash('sha256').update('edge ca').digest('base64url')
const MIN = 60_000

for (const kind of ['memory', 'file'] as const) {
  const makeStore = async (tt: Parameters<typeof tempStateDir>[0]): Promise<TokenStore> =>
    kind === 'memory' ? new MemoryTokenStore() : new FileTokenStore(await tempStateDir(tt))

  t.test(`${kind} store: a token is good exactly once`, async (t) => {
    const store = await makeStore(t)
    const clock = wallManualClock()
    const token = await createJoinToken(store, {
      runnerId: 'runner-1',
      ttlMs: 15 * MIN,
      edgeCaFingerprint: FP,
      clock,
    })
    t.match(token, /^hg1\.[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{22}$/)
    t.equal(parseJoinToken(token).edgeCaFingerprint, FP, 'the pin is readable by the agent')
    t.equal(await consumeJoinToken(store, token, clock, { edgeCaFingerprint: FP }), 'runner-1')
    await t.rejects(consumeJoinToken(store, token, clock), { code: 'HOPGATE_ERR_JOIN_TOKEN_USED' })
    const [rec] = await store.list()
    t.equal(rec?.usedAt, clock.now(), 'usedAt recorded')
  })

  t.test(`${kind} store: racing consumers, one winner`, async (t) => {
    const store = await makeStore(t)
    const clock = wallManualClock()
    const opts = { runnerId: 'r', ttlMs: MIN, edgeCaFingerprint: FP, clock }
    const token = await createJoinToken(store, opts)
    const results = await Promise.allSettled(
      Array.from({ length: 8 }, () => consumeJoinToken(store, token, clock)),
    )
    t.equal(results.filter((r) => r.status === 'fulfilled').length, 1, 'one join wins')
    for (const r of results) {
      if (r.status === 'rejected') t.match(r.reason, { code: 'HOPGATE_ERR_JOIN_TOKEN_USED' })
    }
  })

  t.test(`${kind} store: expiry, wrong secret, tampered pin`, async (t) => {
    const store = await makeStore(t)
    const clock = wallManualClock()
    const opts = { runnerId: 'r-2', ttlMs: 15 * MIN, edgeCaFingerprint: FP, clock }
    const token = await createJoinToken(store, opts)
    const [, fp, secret] = token.split('.')

    const wrong = `hg1.${fp}.${randomBytes(16).toString('base64url')}`
    await t.rejects(consumeJoinToken(store, wrong, clock), {
      code: 'HOPGATE_ERR_JOIN_TOKEN_INVALID',
    })

    const otherFp = createHash('sha256').update('another edge').digest('base64url')
    const tampered = `hg1.${otherFp}.${secret}`
    await t.rejects(consumeJoinToken(store, tampered, clock, { edgeCaFingerprint: FP }), {
      code: 'HOPGATE_ERR_JOIN_TOKEN_INVALID',
    })

    clock.advance(15 * MIN)
    const err = await consumeJoinToken(store, token, clock).catch((e: unknown) => e)
    t.match(err, { code: 'HOPGATE_ERR_JOIN_TOKEN_EXPIRED' }, 'expired at expiresAt')
    t.notMatch(String((err as Error).message), secret!, 'message holds no secret')
    t.notOk((await store.list())[0]?.usedAt, 'refusals did not spend the token')
  })
}

t.test('malformed tokens', async (t) => {
  const store = new MemoryTokenStore()
  const clock = wallManualClock()
  const good = await createJoinToken(store, {
    runnerId: 'r',
    ttlMs: MIN,
    edgeCaFingerprint: FP,
    clock,
  })
  const [, fp, secret] = good.split('.')
  const bad = [
    '',
    'hg1',
    `hg2.${fp}.${secret}`,
    `hg1.${fp}`,
    `hg1.${fp}.${secret}.x`,
    `hg1.${fp!.slice(1)}.${secret}`,
    `hg1.${fp}.${secret}A`,
    `hg1.${fp}.${secret!.slice(0, 21)}=`,
    `hg1.${fp}.${secret!.slice(0, 21)}B`, // non-canonical trailing bits
    `hg1.${fp}.${secret!.replace(/^./, '+')}`,
  ]
  for (const token of bad) {
    t.throws(() => parseJoinToken(token), { code: 'HOPGATE_ERR_JOIN_TOKEN_MALFORMED' }, token)
    await t.rejects(consumeJoinToken(store, token, clock), {
      code: 'HOPGATE_ERR_JOIN_TOKEN_MALFORMED',
    })
  }
  t.equal(await consumeJoinToken(store, ` ${good}\n`, clock), 'r', 'surrounding space tolerated')
})

t.test('createJoinToken validates its inputs', async (t) => {
  const store = new MemoryTokenStore()
  const clock = wallManualClock()
  const base = { runnerId: 'r', ttlMs: MIN, edgeCaFingerprint: FP, clock }
  for (const runnerId of ['', 'R', '-r', 'a'.repeat(64), 'a_b', 'a.b', 'ä']) {
    await t.rejects(createJoinToken(store, { ...base, runnerId }), {
      code: 'HOPGATE_ERR_PKI_ID_INVALID',
    })
  }
  await t.resolves(createJoinToken(store, { ...base, runnerId: 'a'.repeat(63) }))
  for (const ttlMs of [0, -1, 1.5, 31 * 24 * 3600_000]) {
    await t.rejects(createJoinToken(store, { ...base, ttlMs }), {
      code: 'HOPGATE_ERR_CONFIG_INVALID',
    })
  }
  await t.rejects(createJoinToken(store, { ...base, edgeCaFingerprint: 'abc' }), TypeError)
})

t.test('file store keeps only hashes, 0600, and survives reopening', async (t) => {
  const dir = await tempStateDir(t)
  const clock = wallManualClock()
  const store = new FileTokenStore(dir)
  const token = await createJoinToken(store, {
    runnerId: 'runner-9',
    ttlMs: MIN,
    edgeCaFingerprint: FP,
    clock,
  })
  const secret = parseJoinToken(token).secret
  const text = await readFile(store.path, 'utf8')
  t.notMatch(text, secret.toString('base64url'), 'no secret in the file')
  t.notMatch(text, secret.toString('hex'), 'no secret in the file (hex)')
  t.match(text, createHash('sha256').update(secret).digest('hex'), 'its hash is')
  t.equal((await stat(store.path)).mode & 0o777, 0o600)
  t.equal((await stat(`${dir}/pki`)).mode & 0o777, 0o700)
  t.equal(await consumeJoinToken(new FileTokenStore(dir), token, clock), 'runner-9')
  await t.rejects(consumeJoinToken(new FileTokenStore(dir), token, clock), {
    code: 'HOPGATE_ERR_JOIN_TOKEN_USED',
  })
})

t.test('file store prunes long-expired records and refuses a garbled file', async (t) => {
  const dir = await tempStateDir(t)
  const clock = wallManualClock()
  const store = new FileTokenStore(dir)
  const opts = { runnerId: 'old', ttlMs: MIN, edgeCaFingerprint: FP, clock }
  await createJoinToken(store, opts)
  clock.advance(8 * 24 * 3600_000)
  await createJoinToken(store, { ...opts, runnerId: 'new' })
  t.same(
    (await store.list()).map((r) => r.runnerId),
    ['new'],
  )
  await writeFile(store.path, '{"version":1,"tokens":[{"secretHash":"zz"}]}')
  await t.rejects(store.list(), { code: 'HOPGATE_ERR_PKI_STATE_INVALID' })
  await writeFile(store.path, 'not json')
  await t.rejects(store.get('00'), { code: 'HOPGATE_ERR_PKI_STATE_INVALID' })
})
