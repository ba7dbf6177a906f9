// Certificate renewal over the control stream, on a ManualClock set to wall time so 16 hours pass
// in milliseconds: the agent renews at 2/3 of its cert's life through a real edge, stores the new
// pair in the join layout and dials its next session with it; a failed attempt keeps the old cert
// and retries after backoff; the edge refuses a CSR for another runner or a garbled one, counts
// each outcome, and the session stays up.
import t from 'tap'
import { X509Certificate } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import type { TLSSocket } from 'node:tls'
import { agentPath } from '../../certs/state.js'
import { loadRunnerIdentity } from '../../certs/enroll.js'
import { createRunnerKeyAndCsr } from '../../certs/csr.js'
import { renewDueAt } from '../../certs/renew.js'
import { CertRenewer } from '../../agent/renewer.js'
import { signRenewal } from '../../certs/renew.js'
import { HopgateError } from '../../shared/errors.js'
import { wallManualClock } from '../certs/_helpers.js'
import { enroll, testAgent, testEdge, until } from './_cluster.js'

const H = 3600_000

/** Lets promise chains armed by a timer run before the clock moves again. */
const settle = async (): Promise<void> => {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r))
}

t.test('the agent renews at 2/3 of the life over the control stream', async (tt) => {
  const e = await testEdge(tt)
  const serials: string[] = []
  e.edge.tunnel.server.on('secureConnection', (s: TLSSocket) => {
    const serial = s.getPeerX509Certificate()?.serialNumber
    if (serial) serials.push(serial)
  })
  const dir = await enroll(tt, e, 'runner-r')
  const before = await loadRunnerIdentity(dir)
  const clock = wallManualClock()
  const events: string[] = []
  const agent = await testAgent(tt, {
    stateDir: dir,
    edges: [e.tunnel],
    clock,
    onEvent: (ev) => events.push(ev),
  })
  await until(() => agent.controls().length === 1, 'session up')
  const due = renewDueAt(before.certPem)
  const life =
    Date.parse(new X509Certificate(before.certPem).validTo) -
    Date.parse(new X509Certificate(before.certPem).validFrom)
  tt.ok(
    Math.abs(due - Date.parse(new X509Certificate(before.certPem).validFrom) - (2 / 3) * life) <
      1000,
    'due at 2/3 of the life',
  )

  clock.advance(due - clock.now() - 60_000)
  await settle()
  tt.equal(agent.identity.certPem, before.certPem, 'not renewed a minute before it is due')

  clock.advance(60_000)
  await until(() => events.includes('cert-renewed'), 'renewed')
  const after = await loadRunnerIdentity(dir)
  tt.not(after.certPem, before.certPem, 'a new cert is stored')
  tt.not(after.keyPem, before.keyPem, 'with a new key')
  tt.equal(after.runnerId, 'runner-r', 'for the same runner')
  tt.equal(agent.identity.certPem, after.certPem, 'and is what new sessions use')
  const cert = new X509Certificate(after.certPem)
  tt.ok(Date.parse(cert.validTo) - Date.now() > 23 * H, 'a fresh 24 h cert')
  const mode = (await import('node:fs')).statSync(agentPath(dir, 'runner.key')).mode & 0o777
  tt.equal(mode, 0o600, 'the new key is 0600')
  tt.equal(await e.sample('hopgate_edge_cert_renewals_total', { outcome: 'ok' }), 1, 'edge counted')

  // The next session is dialed with the renewed cert.
  for (const s of e.edge.sessions.sessions('runner-r')) s.session.close()
  await until(() => serials.length >= 2 && agent.controls().length === 1, 'reconnected')
  tt.equal(serials.at(-1), cert.serialNumber, 'the reconnect presented the renewed cert')
  tt.equal(serials[0], new X509Certificate(before.certPem).serialNumber, 'the first, the old one')
  tt.ok(clock.pending > 0, 'the next renewal is scheduled')
  tt.ok(agent.renewer!.dueAt > Date.now() + 15 * H, 'for 2/3 of the new life')
})

t.test('a failed renewal keeps the old cert and retries after backoff', async (tt) => {
  const e = await testEdge(tt)
  const dir = await enroll(tt, e, 'runner-f')
  const identity = await loadRunnerIdentity(dir)
  const old = { ...identity }
  const clock = wallManualClock()
  let calls = 0
  const errors: HopgateError[] = []
  const renewed: string[] = []
  const renewer = new CertRenewer({
    stateDir: dir,
    identity,
    clock,
    backoff: { baseMs: 1000, capMs: 1000, random: () => 0.5 },
    request: async (csr) => {
      calls++
      if (calls === 1) throw new Error('edge unreachable')
      if (calls === 2) return 'not a certificate'
      return signRenewal({ csrPem: csr, runnerId: 'runner-f', runnerCa: e.pki.runnerCa, clock })
    },
    onError: (err) => errors.push(err),
    onRenewed: (id) => renewed.push(id.certPem),
  })
  tt.teardown(() => renewer.stop())
  renewer.start()
  clock.advance(renewDueAt(old.certPem) - clock.now())
  await until(() => errors.length === 1, 'first attempt failed')
  tt.equal(errors[0]!.code, 'HOPGATE_ERR_RENEW_FAILED', 'typed error')
  tt.equal(identity.certPem, old.certPem, 'old cert kept in memory')
  tt.equal((await loadRunnerIdentity(dir)).certPem, old.certPem, 'and on disk')
  clock.advance(499)
  await settle()
  tt.equal(calls, 1, 'no retry before the backoff delay (500 ms)')
  clock.advance(1)
  await until(() => errors.length === 2, 'a bad answer fails too')
  tt.equal(errors[1]!.code, 'HOPGATE_ERR_RENEW_FAILED')
  tt.equal(identity.keyPem, old.keyPem, 'the new key is not used for a cert that did not check')
  clock.advance(500)
  await until(() => renewed.length === 1, 'third attempt succeeds')
  tt.equal(calls, 3)
  tt.not(identity.certPem, old.certPem, 'renewed in place')
  tt.equal(await readFile(agentPath(dir, 'runner.crt'), 'utf8'), identity.certPem, 'stored')
})

t.test(
  'the edge refuses a CSR for another runner or a garbled one; the session stays',
  async (tt) => {
    const e = await testEdge(tt)
    const dir = await enroll(tt, e, 'runner-a')
    const agent = await testAgent(tt, { stateDir: dir, edges: [e.tunnel], renew: false })
    await until(() => agent.controls().length === 1, 'session up')
    const control = agent.controls()[0]!
    const other = createRunnerKeyAndCsr('runner-b').csrPem
    await tt.rejects(control.renew(other), { code: 'HOPGATE_ERR_RENEW_FAILED' }, 'other runner')
    await tt.rejects(control.renew('garbage'), { code: 'HOPGATE_ERR_RENEW_FAILED' }, 'garbled CSR')
    const join = createRunnerKeyAndCsr().csrPem
    await tt.rejects(
      control.renew(join),
      { code: 'HOPGATE_ERR_RENEW_FAILED' },
      'CSR naming no runner',
    )
    tt.equal(
      await e.sample('hopgate_edge_cert_renewals_total', {
        outcome: 'HOPGATE_ERR_RENEW_WRONG_RUNNER',
      }),
      2,
      'wrong-runner refusals counted',
    )
    tt.equal(
      await e.sample('hopgate_edge_cert_renewals_total', {
        outcome: 'HOPGATE_ERR_JOIN_CSR_INVALID',
      }),
      1,
      'garbled CSR counted',
    )
    tt.equal(agent.controls().length, 1, 'the session is still up')
    tt.equal(e.edge.sessions.sessions('runner-a').length, 1, 'and registered on the edge')
    const good = createRunnerKeyAndCsr('runner-a').csrPem
    const pem = await control.renew(good)
    tt.match(
      new X509Certificate(pem).subjectAltName,
      /urn:hopgate:runner:runner-a/,
      'then one works',
    )

    await e.edge.revocation.revoke('runner-a')
    tt.throws(
      () =>
        signRenewal({
          csrPem: good,
          runnerId: 'runner-a',
          runnerCa: e.pki.runnerCa,
          revocation: e.edge.revocation,
        }),
      { code: 'HOPGATE_ERR_PKI_REVOKED' },
      'a revoked runner gets no new cert',
    )
  },
)
