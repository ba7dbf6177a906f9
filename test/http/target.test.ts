// The request-target parser (edge/http/target.ts) on its own: the hex fixtures in
// fixtures/targets.txt (each refused with its status or parsed to the expected upstream target),
// base path enforcement, the one-time token split, and fast-check properties: any string is either
// refused with a typed 400/414 or yields a project that is the target's first segment and an
// upstream target with no forbidden sequence; valid targets forward their rest byte for byte.
import t from 'tap'
import fc from 'fast-check'
import { readFileSync } from 'node:fs'
import { HopgateError } from '../../shared/errors.js'
import { parseTarget, assertBasePath, MAX_TARGET_BYTES } from '../../edge/http/target.js'

const P = '0f8fad5b-d9cb-469f-a165-70867728950e'

const fixtures = readFileSync(new URL('./fixtures/targets.txt', import.meta.url), 'utf8')
  .split('\n')
  .filter((l) => l.trim() && !l.startsWith('#'))
  .map((l) => {
    const [expect, hex, ...label] = l.split(' ')
    return {
      expect: expect!,
      raw: hex === '-' ? '' : Buffer.from(hex!, 'hex').toString('latin1'),
      label: label.join(' ').replace(/^# /, ''),
    }
  })

function statusOf(raw: string, base = ''): number {
  try {
    parseTarget(raw, base)
    return 200
  } catch (err) {
    if (!(err instanceof HopgateError)) throw err
    return err.httpStatus ?? 0
  }
}

t.test('hex fixtures', async (tt) => {
  tt.ok(fixtures.length >= 50, `${fixtures.length} fixtures`)
  for (const f of fixtures) {
    if (f.expect.startsWith('ok:')) {
      const [, kind, port, upstream] = f.expect.split(':')
      const got = parseTarget(f.raw)
      tt.equal(got.project, P, `${f.label}: project`)
      tt.equal(got.kind, kind, `${f.label}: kind`)
      tt.equal(got.port, Number(port), `${f.label}: port`)
      tt.equal(got.upstreamTarget, Buffer.from(upstream!, 'hex').toString('latin1'), f.label)
    } else {
      tt.equal(statusOf(f.raw), Number(f.expect), `${f.label}: ${f.expect}`)
    }
  }
})

t.test('base path is enforced and kept for /port/', async (tt) => {
  const got = parseTarget(`/hub/${P}/port/80/x`, '/hub')
  tt.equal(got.upstreamTarget, `/hub/${P}/port/80/x`)
  tt.equal(got.projectPrefix, `/hub/${P}/`)
  tt.equal(parseTarget(`/hub/${P}/server/80/x`, '/hub').upstreamTarget, '/x')
  tt.equal(statusOf(`/${P}/port/80/x`, '/hub'), 400, 'outside the base path')
  tt.equal(statusOf(`/hubx/${P}/port/80/x`, '/hub'), 400, 'a longer first segment')
  tt.equal(statusOf(`/HUB/${P}/port/80/x`, '/hub'), 400, 'base path is case-sensitive')
  tt.throws(() => assertBasePath('/hub/'), { code: 'HOPGATE_ERR_CONFIG_INVALID' })
  tt.throws(() => assertBasePath('hub'), { code: 'HOPGATE_ERR_CONFIG_INVALID' })
  tt.throws(() => assertBasePath('/a/../b'), { code: 'HOPGATE_ERR_CONFIG_INVALID' })
  tt.doesNotThrow(() => assertBasePath(''))
})

t.test('the one-time token leaves the query; the rest stays byte for byte', async (tt) => {
  const got = parseTarget(`/${P}/port/80/a?x=1&hopgate_token=hgu1.abc.def&y=%20`)
  tt.equal(got.queryToken, 'hgu1.abc.def')
  tt.equal(got.cleanTarget, `/${P}/port/80/a?x=1&y=%20`)
  tt.equal(got.upstreamTarget, `/${P}/port/80/a?x=1&y=%20`)
  const only = parseTarget(`/${P}/server/80/a?hopgate_token=hgu1.a.b`)
  tt.equal(only.cleanTarget, `/${P}/server/80/a`, 'no dangling ?')
  tt.equal(only.upstreamTarget, '/a')
  tt.equal(parseTarget(`/${P}/port/80/a?`).upstreamTarget, `/${P}/port/80/a?`, 'empty query kept')
})

const hex = fc.constantFrom(...'0123456789abcdef')
const hexN = (n: number): fc.Arbitrary<string> =>
  fc.array(hex, { minLength: n, maxLength: n }).map((a) => a.join(''))
const projectArb = fc.tuple(hexN(8), hexN(4), hexN(4), hexN(4), hexN(12)).map((p) => p.join('-'))
// Path segments built from characters that are always allowed, never forming a dot segment.
const segArb = fc
  .array(fc.constantFrom(..."abcXYZ019-_~!$&'()*+,;=:@%20".split('')), {
    minLength: 1,
    maxLength: 12,
  })
  .map((a) => a.join('').replace(/%(?![0-9a-fA-F]{2})/g, 'p'))
  .filter((s) => !/^\.+$/.test(s) && !/%(?:2f|5c|[01][0-9a-f]|7f|2e)/i.test(s))
const restArb = fc.array(segArb, { maxLength: 6 }).map((s) => s.map((x) => `/${x}`).join(''))

t.test('property: valid targets route to their own project, rest byte for byte', async (tt) => {
  fc.assert(
    fc.property(
      projectArb,
      fc.integer({ min: 1, max: 65535 }),
      restArb,
      fc.constantFrom('port', 'server'),
      (project, port, rest, kind) => {
        const raw = `/${project}/${kind}/${port}${rest}`
        const got = parseTarget(raw)
        return (
          got.project === project &&
          got.port === port &&
          got.upstreamTarget === (kind === 'port' ? raw : rest || '/')
        )
      },
    ),
    { numRuns: 2000 },
  )
  tt.pass('2000 runs')
})

t.test('property: arbitrary input is refused (typed) or yields a clean route', async (tt) => {
  const anyString = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 200 }),
    fc.string({ maxLength: 200 }),
    fc
      .tuple(projectArb, fc.string({ unit: 'binary-ascii', maxLength: 60 }))
      .map(([p, s]) => `/${p}/port/80/${s}`),
    fc
      .tuple(projectArb, fc.string({ maxLength: 20 }), fc.string({ maxLength: 20 }))
      .map(([p, a, b]) => `/${a}${p}/server/1${b}`),
  )
  fc.assert(
    fc.property(anyString, (raw) => {
      let got
      try {
        got = parseTarget(raw)
      } catch (err) {
        return (
          err instanceof HopgateError &&
          (err.code === 'HOPGATE_ERR_HTTP_BAD_TARGET' ||
            err.code === 'HOPGATE_ERR_HTTP_TARGET_TOO_LONG')
        )
      }
      const path = raw.split('?')[0]!
      return (
        raw.startsWith(`/${got.project}/`) &&
        !path.includes('//') &&
        !/[\\\s]|%2f|%5c|%00/i.test(got.upstreamTarget) &&
        !path.split('/').some((s) => /^(?:\.|%2e){1,2}$/i.test(s))
      )
    }),
    { numRuns: 5000 },
  )
  tt.pass('5000 runs')
})

t.test('property: one forbidden sequence anywhere in the path refuses the target', async (tt) => {
  const bad = fc.constantFrom(
    '//',
    '/../',
    '/./',
    '%2f',
    '%2F',
    '%5C',
    '\\',
    '\x00',
    '%00',
    '/%2e%2e/',
    ' ',
    '\u00e9',
    '#',
  )
  fc.assert(
    fc.property(projectArb, restArb, bad, fc.nat(), (project, rest, b, at) => {
      const raw = `/${project}/port/80${rest}`
      const i = 1 + (at % raw.length)
      return statusOf(raw.slice(0, i) + b + raw.slice(i)) === 400
    }),
    { numRuns: 3000 },
  )
  tt.equal(statusOf('/' + 'a'.repeat(MAX_TARGET_BYTES)), 414, 'length is checked first')
})
