// `hopgate edge` with its store choice, as a real process: HOPGATE_STORE=redis://... runs on Redis
// (the ready line says so, SIGTERM exits 0) and a malformed --store exits 78 before listening.
// (Redis unreachable at startup is a typed refusal: redis-shared-state.test.ts.)
import t from 'tap'
import { initCa } from '../../certs/pki.js'
import { tempDir } from '../helpers/echo.js'
import { redisAvailable, startRedis } from '../helpers/redis.js'
import { runHopgate, startHopgate } from '../helpers/cli.js'

if (redisAvailable(t)) {
  t.test('hopgate edge on Redis, and the refusals', async (tt) => {
    const server = await startRedis(tt)
    const dir = await tempDir(tt, 'redis-cli')
    await initCa(dir, { edgeId: 'edge-cli' })
    const common = ['edge', '--state-dir', dir, '--tunnel-listen', '127.0.0.1:0']
    const listen = [...common, '--admin-listen', '127.0.0.1:0', '--json']

    const edge = await startHopgate(listen, { env: { HOPGATE_STORE: server.url } })
    tt.teardown(() => void edge.child.kill('SIGKILL'))
    tt.match(edge.ready, { event: 'ready', edgeId: 'edge-cli', store: 'redis' })
    edge.child.kill('SIGTERM')
    tt.equal((await edge.exit)[0], 0, 'SIGTERM: closed the stores and exited 0')

    const bad = await runHopgate([...common, '--store', 'mysql://db:3306'], {
      env: { HOPGATE_STORE: '' },
    })
    tt.equal(bad.code, 78, 'a malformed --store is a configuration error')
    tt.match(bad.stderr, 'HOPGATE_ERR_CONFIG_INVALID')
  })
}
