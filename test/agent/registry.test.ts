import t from 'tap'
import fc from 'fast-check'
import { TargetRegistry } from '../../agent/registry.js'

const P = '0f8fad5b-d9cb-469f-a165-70867728950e'
const Q = '7c9e6679-7425-40de-944b-e07fc1f90ae7'

t.test('default deny: unknown projects, services and ports are refused', async (tt) => {
  const r = new TargetRegistry()
  tt.same(r.resolve(P, 'ssh'), { ok: false, reason: 'unknown-project' })
  r.set(P, { host: '127.0.0.1', sshPort: 2201, allowedPorts: [8080, '9000-9009'] })
  tt.same(r.resolve(P, 'ssh'), { ok: true, target: { host: '127.0.0.1', port: 2201 } })
  tt.same(r.resolve(P, 'raw'), { ok: false, reason: 'refused' }, 'no raw server configured')
  tt.same(r.resolve(P, 'port', 8080), { ok: true, target: { host: '127.0.0.1', port: 8080 } })
  tt.same(r.resolve(P, 'port', 9005), { ok: true, target: { host: '127.0.0.1', port: 9005 } })
  tt.same(r.resolve(P, 'port', 9010), { ok: false, reason: 'refused' }, 'outside the range')
  tt.same(r.resolve(P, 'port', 0), { ok: false, reason: 'refused' })
  tt.same(r.resolve(P, 'port', 70000), { ok: false, reason: 'refused' })
  tt.same(r.resolve(Q, 'port', 8080), { ok: false, reason: 'unknown-project' }, 'another project')
})

t.test('bad entries are refused with HOPGATE_ERR_CONFIG_INVALID', async (tt) => {
  const r = new TargetRegistry()
  const bad: Array<[string, unknown]> = [
    [P.toUpperCase(), { host: '127.0.0.1' }],
    [P.replaceAll('-', ''), { host: '127.0.0.1' }],
    [P, { host: '' }],
    [P, { host: '127.0.0.1', sshPort: 0 }],
    [P, { host: '127.0.0.1', allowedPorts: ['9010-9000'] }],
    [P, { host: '127.0.0.1', allowedPorts: ['1-70000'] }],
    [P, { host: '127.0.0.1', somethingElse: true }],
  ]
  for (const [id, targets] of bad) {
    tt.throws(
      () => r.set(id, targets as never),
      { code: 'HOPGATE_ERR_CONFIG_INVALID' },
      JSON.stringify(targets),
    )
  }
  tt.equal(r.size, 0, 'nothing half-added')
})

t.test('add, replace, remove', async (tt) => {
  const r = new TargetRegistry()
  r.set(P, { host: '127.0.0.1', rawPort: 8000 })
  r.set(Q, { host: '10.1.2.3', sshPort: 22 })
  tt.same(r.list(), [Q, P].sort())
  r.set(P, { host: '127.0.0.1', rawPort: 8001 })
  tt.same(r.resolve(P, 'raw'), { ok: true, target: { host: '127.0.0.1', port: 8001 } })
  tt.ok(r.remove(P))
  tt.notOk(r.remove(P))
  tt.same(r.resolve(P, 'raw'), { ok: false, reason: 'unknown-project' })
})

t.test('property: a port resolves only if it is listed', async (tt) => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 1, max: 65535 }), { maxLength: 20 }),
      fc.integer({ min: -5, max: 70000 }),
      (allowed, probe) => {
        const r = new TargetRegistry()
        r.set(P, { host: '127.0.0.1', allowedPorts: allowed })
        return r.resolve(P, 'port', probe).ok === allowed.includes(probe)
      },
    ),
    { numRuns: 300 },
  )
  tt.pass('300 random port lists')
})
