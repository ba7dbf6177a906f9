// `hopgate token create --store redis://...` as real processes against a real redis-server: the
// token lands in the shared store (hashed), an edge running on that store enrolls a runner with it
// (once), a token minted into the state dir instead is unknown to that edge, and a malformed
// --store is a configuration error (exit 78).
import t from 'tap'
import { Redis } from 'ioredis'
import { initCa } from '../../certs/pki.js'
import { joinOverTls } from '../../certs/enroll.js'
import { tempDir } from '../helpers/echo.js'
import { redisAvailable, startRedis } from '../helpers/redis.js'
import { runHopgate, startHopgate } from '../helpers/cli.js'

const ENV = { HOPGATE_STORE: '' }

async function mint(args: string[]): Promise<string> {
  const r = await runHopgate(['token', 'create', '--json', ...args], { env: ENV })
  if (r.code !== 0) throw new Error(`token create exited ${r.code}: ${r.stderr}`)
  return (JSON.parse(r.stdout) as { token: string }).token
}

t.test('token create --store redis:// mints into the shared store', async (tt) => {
  if (!redisAvailable(tt)) return
  const server = await startRedis(tt)
  const redis = new Redis(server.url)
  tt.teardown(() => redis.disconnect())
  const dir = await tempDir(tt, 'token-store')
  await initCa(dir, { edgeId: 'edge-1' })

  const shared = await mint(['--state-dir', dir, '--runner', 'runner-a', '--store', server.url])
  tt.match(shared, /^hg1\./, 'a join token')
  const keys = await redis.keys('hopgate:token*')
  tt.ok(keys.length > 0, `stored in Redis under the default prefix (${keys.join(', ')})`)
  tt.notOk(
    (await redis.keys('*')).some((k) => k.includes(shared)),
    'only hashed: the token text is no key',
  )
  const prefixed = await mint([
    '--state-dir',
    dir,
    '--runner',
    'runner-c',
    '--store',
    server.url,
    '--store-key-prefix',
    'other:',
  ])
  tt.ok((await redis.keys('other:token*')).length > 0, '--store-key-prefix is honoured')
  const local = await mint(['--state-dir', dir, '--runner', 'runner-b'])

  const edge = await startHopgate(
    ['edge', '--state-dir', dir, '--tunnel-listen', '127.0.0.1:0', '--json'],
    { env: { HOPGATE_STORE: server.url } },
  )
  tt.teardown(() => void edge.child.kill('SIGKILL'))
  const ready = edge.ready as { tunnel: string; store: string }
  tt.equal(ready.store, 'redis', 'the edge runs on the Redis store')
  const port = Number(ready.tunnel.split(':').pop())

  const identity = await joinOverTls({ host: '127.0.0.1', port, token: shared })
  tt.equal(identity.runnerId, 'runner-a', 'the edge enrolled the runner with the Redis token')
  await tt.rejects(
    joinOverTls({ host: '127.0.0.1', port, token: shared }),
    { code: 'HOPGATE_ERR_JOIN_TOKEN_USED' },
    'single use: the shared store marked it used',
  )
  await tt.rejects(
    joinOverTls({ host: '127.0.0.1', port, token: local }),
    { code: /^HOPGATE_ERR_JOIN_TOKEN_/ },
    'a token minted into the state dir is unknown to an edge on Redis',
  )
  await tt.rejects(
    joinOverTls({ host: '127.0.0.1', port, token: prefixed }),
    { code: /^HOPGATE_ERR_JOIN_TOKEN_/ },
    'and so is one under another key prefix',
  )
  edge.child.kill('SIGTERM')
  tt.equal((await edge.exit)[0], 0, 'the edge exits 0')

  const bad = await runHopgate(
    ['token', 'create', '--state-dir', dir, '--runner', 'r', '--store', 'mysql://x'],
    { env: ENV },
  )
  tt.equal(bad.code, 78, 'a malformed --store is a configuration error')
  tt.match(bad.stderr, 'HOPGATE_ERR_CONFIG_INVALID')
})
