import t from 'tap'
import { defaultConfig, verifyConfig } from '../../shared/yamux/index.js'

t.test('defaults are the documented ones', async (tt) => {
  const c = verifyConfig()
  tt.equal(c.acceptBacklog, 256)
  tt.equal(c.maxStreamWindowBytes, 16 * 1024 * 1024)
  tt.same(c, defaultConfig)
})

t.test('bad values are refused with HOPGATE_ERR_CONFIG_INVALID', async (tt) => {
  const bad: Array<Record<string, unknown>> = [
    { acceptBacklog: 0 },
    { acceptBacklog: 1.5 },
    { maxStreamWindowBytes: 1024 },
    { maxStreamWindowBytes: 2 ** 31 },
    { keepAliveIntervalMs: -1 },
    { keepAliveJitter: 0.9 },
    { pingTimeoutMs: Number.NaN },
    { maxStreams: '10' },
    { noSuchOption: 1 },
  ]
  for (const b of bad) {
    tt.throws(() => verifyConfig(b), { code: 'HOPGATE_ERR_CONFIG_INVALID' }, JSON.stringify(b))
  }
  tt.equal(verifyConfig({ keepAliveIntervalMs: 0 }).keepAliveIntervalMs, 0, 'keepalive can be off')
})
