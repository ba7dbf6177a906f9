// `hopgate edge` as a process serves PromMetrics at GET /metrics on its admin port: the
// hopgate_edge_* families (refusals counted from a real refused connection) next to prom-client's
// process metrics, and no id or address in any label.
import t from 'tap'
import net from 'node:net'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { initCa } from '../../certs/pki.js'
import { tempDir } from '../helpers/echo.js'
import { sampleOf } from '../agent/_cluster.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

t.test('hopgate edge: GET /metrics', async (tt) => {
  const dir = await tempDir(tt, 'edge-cli')
  await initCa(dir, { edgeId: 'edge-9' })
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      'shared/cli/main.ts',
      'edge',
      '--json',
      '--state-dir',
      dir,
      '--tunnel-listen',
      '127.0.0.1:0',
      '--admin-listen',
      '127.0.0.1:0',
    ],
    {
      cwd: ROOT,
      env: { ...process.env, HOPGATE_LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  let stderr = ''
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
  tt.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL')
  })
  const [line] = (await once(createInterface({ input: child.stdout }), 'line')) as [string]
  const ready = JSON.parse(line) as { tunnel: string; admin: string }
  tt.match(ready.admin, /^127\.0\.0\.1:\d+$/, `ready line names the admin port ${stderr}`)

  // A plain TCP connection that speaks no TLS: refused, and counted.
  const [host, port] = ready.tunnel.split(':') as [string, string]
  const junk = net.connect(Number(port), host)
  junk.on('error', () => {})
  junk.end('not TLS\r\n\r\n')
  await once(junk, 'close')

  const url = `http://${ready.admin}/metrics`
  let text = ''
  for (let i = 0; i < 200; i++) {
    text = await (await fetch(url)).text()
    if (/hopgate_edge_tunnel_refusals_total\{/.test(text)) break
    await new Promise((r) => setTimeout(r, 20))
  }
  tt.ok(
    sampleOf({ body: text }, 'hopgate_edge_tunnel_refusals_total', {
      reason: 'HOPGATE_ERR_PKI_TLS_UNVERIFIED',
    }) >= 1,
    'the refused handshake is counted by reason',
  )
  tt.equal(sampleOf({ body: text }, 'hopgate_edge_sessions', { connector: 'reverse' }), 0)
  tt.match(text, /^process_cpu_user_seconds_total /m, 'process metrics from prom-client')
  tt.notMatch(text, /127\.0\.0\.1|edge-9/, 'no address or id in any label')
  child.kill('SIGTERM')
  const [code] = (await once(child, 'exit')) as [number]
  tt.equal(code, 0, 'SIGTERM exits 0')
})
