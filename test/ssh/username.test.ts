// The username parser: CoCalc's three project forms map to one lowercase UUID, account names
// select ProxyJump, and everything else (upper case, malformed UUIDs, paths, control bytes) is
// refused with HOPGATE_ERR_SSH_BAD_USERNAME.
import t from 'tap'
import fc from 'fast-check'
import { parseSshUsername } from '../../edge/ssh/username.js'
import { isHopgateError } from '../../shared/errors.js'

const P = '0f8fad5b-d9cb-469f-a165-70867728950e'
const hexChar = fc.constantFrom(...'0123456789abcdef'.split(''))
const uuid = fc
  .array(hexChar, { minLength: 32, maxLength: 32 })
  .map((a) => a.join(''))
  .map(
    (h) =>
      `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`,
  )

const refused = (u: string): boolean => {
  try {
    parseSshUsername(u)
    return false
  } catch (err) {
    return isHopgateError(err, 'HOPGATE_ERR_SSH_BAD_USERNAME')
  }
}

t.test('the three project forms', async (tt) => {
  tt.same(parseSshUsername(P), { kind: 'project', project: P })
  tt.same(parseSshUsername(P.replaceAll('-', '')), { kind: 'project', project: P })
  tt.same(parseSshUsername(`project-${P}`), { kind: 'project', project: P })
  fc.assert(
    fc.property(uuid, (u) => {
      const forms = [u, u.replaceAll('-', ''), `project-${u}`]
      return forms.every((f) => {
        const r = parseSshUsername(f)
        return r.kind === 'project' && r.project === u
      })
    }),
  )
  tt.pass('every UUID in every form parses to itself')
})

t.test('accounts select ProxyJump', async (tt) => {
  tt.same(parseSshUsername('alice'), { kind: 'account', account: 'alice' })
  tt.same(parseSshUsername('a.b@c-d'), { kind: 'account', account: 'a.b@c-d' })
})

t.test('everything else is refused', async (tt) => {
  for (const u of [
    '',
    P.toUpperCase(),
    P.slice(1),
    `${P}0`,
    `project-${P.replaceAll('-', '')}`,
    `project-${P.toUpperCase()}`,
    `project-`,
    `project-alice`,
    P.replaceAll('-', '').slice(1),
    `${P} `,
    `../${P}`,
    `${P}/x`,
    'alice\n',
    'Alice',
    'a'.repeat(65),
    '0f8fad5bd9cb469fa16570867728950',
  ]) {
    tt.ok(refused(u), `refused: ${JSON.stringify(u)}`)
  }
  fc.assert(
    fc.property(fc.string({ maxLength: 80 }), (s) => {
      try {
        const r = parseSshUsername(s)
        // Whatever parses is exactly one of the accepted shapes.
        return r.kind === 'project'
          ? /^[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$/.test(r.project)
          : /^[a-z0-9][a-z0-9._@-]{0,63}$/.test(r.account) && r.account === s
      } catch (err) {
        return isHopgateError(err, 'HOPGATE_ERR_SSH_BAD_USERNAME')
      }
    }),
    { numRuns: 2000 },
  )
  tt.pass('2000 random strings: a strict shape or a typed refusal')
  fc.assert(
    fc.property(uuid, fc.nat(35), fc.constantFrom('g', 'X', '/', ' ', '-', '.'), (u, i, ch) => {
      const bad = u.slice(0, i) + ch + u.slice(i + 1)
      return bad === u || refused(bad) || parseSshUsername(bad).kind === 'project'
    }),
  )
  tt.pass('a UUID with one character replaced never turns into an account name')
})
