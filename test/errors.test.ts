// Keeps docs/errors.md and the catalogue in shared/errors.ts in step, as fastify does: every code
// documented with the same wire mapping, no documented code missing from the code.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { ERROR_CATALOG, HopgateError, isHopgateError, type ErrorSpec } from '../shared/errors.js'

const doc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8')
const rows = new Map<string, string[]>()
for (const line of doc.split('\n')) {
  const m = /^\| `(HOPGATE_ERR_[A-Z0-9_]+)` \|(.*)\|\s*$/.exec(line)
  if (m)
    rows.set(
      m[1]!,
      m[2]!.split('|').map((c) => c.trim()),
    )
}

t.test('every code in shared/errors.ts is documented with its mapping', async (tt) => {
  for (const [code, spec] of Object.entries(ERROR_CATALOG) as Array<[string, ErrorSpec]>) {
    const row = rows.get(code)
    tt.ok(row, `${code} is in docs/errors.md`)
    if (!row) continue
    const [, goAway, http, exit] = row
    tt.equal(goAway, spec.goAway === undefined ? '' : String(spec.goAway), `${code}: GoAway column`)
    tt.equal(
      http,
      spec.httpStatus === undefined ? '' : String(spec.httpStatus),
      `${code}: HTTP column`,
    )
    tt.equal(exit, spec.exitCode === undefined ? '' : String(spec.exitCode), `${code}: exit column`)
  }
})

t.test('every documented code exists in shared/errors.ts', async (tt) => {
  for (const code of rows.keys()) tt.ok(code in ERROR_CATALOG, `${code} is defined`)
  tt.ok(rows.size > 0, 'the table was parsed')
})

t.test('HopgateError carries code, mapping and cause', async (tt) => {
  const cause = new Error('socket hang up')
  const e = new HopgateError('HOPGATE_ERR_YAMUX_BAD_VERSION', 'version 7', { cause })
  tt.equal(e.code, 'HOPGATE_ERR_YAMUX_BAD_VERSION')
  tt.equal(e.goAway, 1)
  tt.equal(e.cause, cause)
  tt.match(e.message, /version 7/)
  tt.ok(isHopgateError(e, 'HOPGATE_ERR_YAMUX_BAD_VERSION'))
  tt.notOk(isHopgateError(e, 'HOPGATE_ERR_ABORTED'))
  tt.notOk(isHopgateError(cause))
  tt.equal(new HopgateError('HOPGATE_ERR_CONFIG_INVALID').exitCode, 78)
})
