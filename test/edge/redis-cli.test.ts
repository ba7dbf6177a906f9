// `hopgate edge` with its store choice, as a real process: HOPGATE_STORE=redis://... runs on Redis
// (the ready line says so, SIGTERM exits 0) and a malformed --store exits 78 before listening.
// (Redis unreachable at startup is a typed refusal: redis-shared-state.test.ts.)
import t from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { initCa } from '../../certs/pki.js'
import { tempDir } from '../helpers/echo.js'
import { redisAvailable, startRedis } from '../helpers/redis.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

function hopgate(args: string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'shared/cli/main.ts', ...args], {
    cwd: ROOT,
    env: { ...process.env, HOPGATE_LOG_LEVEL: 'warn', HOPGATE_STORE: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stderr = ''
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
  const exit = once(child, 'exit') as Promise<[number | null]>
  return { child, exit, stderr: () => stderr }
}

if (redisAvailable(t)) {
  t.test('hopgate edge on Redis, and the refusals', async (tt) => {
    const server = await startRedis(tt)
    const dir = await tempDir(tt, 'redis-cli')
    await initCa(dir, { edgeId: 'edge-cli' })
    const common = ['edge', '--state-dir', dir, '--tunnel-listen', '127.0.0.1:0']
    const listen = [...common, '--admin-listen', '127.0.0.1:0', '--json']

    const edge = hopgate(listen, { HOPGATE_STORE: server.url })
    tt.teardown(() => void edge.child.kill('SIGKILL'))
    const line = await new Promise<string>((resolve, reject) => {
      createInterface({ input: edge.child.stdout }).once('line', resolve)
      void edge.exit.then(([code]) => reject(new Error(`exited ${code}: ${edge.stderr()}`)))
    })
    tt.match(JSON.parse(line), { event: 'ready', edgeId: 'edge-cli', store: 'redis' })
    edge.child.kill('SIGTERM')
    tt.equal((await edge.exit)[0], 0, 'SIGTERM: closed the stores and exited 0')

    const bad = hopgate([...common, '--store', 'mysql://db:3306'])
    tt.equal((await bad.exit)[0], 78, 'a malformed --store is a configuration error')
    tt.match(bad.stderr(), 'HOPGATE_ERR_CONFIG_INVALID')
  })
}
