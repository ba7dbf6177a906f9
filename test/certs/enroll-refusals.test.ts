// The edge's side of enrollment under bad input, over real TLS on 127.0.0.1: garbled CSRs,
// oversize, malformed and trailing messages, silent clients, expired tokens and revoked runners
// each get a typed error reply, no refusal spends the token, and the edge keeps serving.
import t from 'tap'
import tls from 'node:tls'
import { joinOverTls } from '../../certs/enroll.js'
import { JOIN_ALPN, encodeMessage } from '../../certs/wire.js'
import { sharedPki, wallManualClock } from './_helpers.js'
import { frame, rawJoin, setup } from './_join.js'

const pkiOnce = sharedPki(t)

t.test('broken and hostile clients get typed replies; the edge keeps serving', async (t) => {
  const { server, token, tokens } = await setup(t, pkiOnce)
  const tok = await token()
  const join = (csr: string, extra: object = {}) =>
    encodeMessage({ type: 'join', version: 1, token: tok, csr, ...extra })
  const cases: Array<[string, Buffer, string]> = [
    ['garbled CSR', join('garbage'), 'HOPGATE_ERR_JOIN_CSR_INVALID'],
    [
      'garbled CSR body',
      join('-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n'),
      'HOPGATE_ERR_JOIN_CSR_INVALID',
    ],
    [
      'oversize length prefix',
      Buffer.concat([frame('x'.repeat(16 * 1024 + 1))]),
      'HOPGATE_ERR_JOIN_MESSAGE_TOO_LARGE',
    ],
    [
      '1 MiB announced',
      Buffer.from([0, 0x10, 0, 0, 1, 2, 3]),
      'HOPGATE_ERR_JOIN_MESSAGE_TOO_LARGE',
    ],
    ['not JSON', frame('{nope'), 'HOPGATE_ERR_JOIN_BAD_MESSAGE'],
    ['empty message', Buffer.alloc(4), 'HOPGATE_ERR_JOIN_BAD_MESSAGE'],
    ['wrong type', frame('{"type":"hello"}'), 'HOPGATE_ERR_JOIN_BAD_MESSAGE'],
    ['unknown version', join('x', { version: 2 }), 'HOPGATE_ERR_JOIN_BAD_MESSAGE'],
    [
      'bytes after the message',
      Buffer.concat([join('x'), Buffer.from('zz')]),
      'HOPGATE_ERR_JOIN_BAD_MESSAGE',
    ],
    ['closed before a message', Buffer.from([0, 0]), 'HOPGATE_ERR_JOIN_CONNECTION_FAILED'],
  ]
  for (const [name, payload, code] of cases) {
    if (code === 'HOPGATE_ERR_JOIN_CONNECTION_FAILED') {
      const s = tls.connect({
        host: '127.0.0.1',
        port: server.port,
        ALPNProtocols: [JOIN_ALPN],
        rejectUnauthorized: false,
      })
      s.on('error', () => undefined)
      s.once('secureConnect', () => s.end(payload))
    } else {
      t.match(await rawJoin(server.port, payload), { type: 'error', code }, name)
    }
    t.match(await server.next(), { ok: false, code }, `${name}: outcome`)
  }
  t.notOk((await tokens.list())[0]?.usedAt, 'no refusal spent the token')
  const id = await joinOverTls({ host: '127.0.0.1', port: server.port, token: tok })
  t.equal(id.runnerId, 'runner-1', 'the same token still joins afterwards')
})

t.test(
  'the edge refuses expired tokens and revoked runners; times out silent clients',
  async (t) => {
    const clock = wallManualClock()
    const { server, token, revocation } = await setup(t, pkiOnce, { clock })
    const expired = await token('runner-1', clock, 60_000)
    clock.advance(60_000)
    await t.rejects(joinOverTls({ host: '127.0.0.1', port: server.port, token: expired }), {
      code: 'HOPGATE_ERR_JOIN_TOKEN_EXPIRED',
    })
    await server.next()

    await revocation.revoke('runner-2')
    await t.rejects(
      joinOverTls({ host: '127.0.0.1', port: server.port, token: await token('runner-2') }),
      {
        code: 'HOPGATE_ERR_PKI_REVOKED',
      },
    )
    await server.next()

    const reply = rawJoin(server.port)
    await server.whenStarted(3)
    clock.advance(10_000)
    t.match(
      await reply,
      { type: 'error', code: 'HOPGATE_ERR_JOIN_TIMEOUT' },
      'deadline on the ManualClock',
    )
    t.match(await server.next(), { ok: false, code: 'HOPGATE_ERR_JOIN_TIMEOUT' })
  },
)
