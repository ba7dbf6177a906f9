// `hopgate edge` as a process serves PromMetrics at GET /metrics on its admin port: the
// hopgate_edge_* families (refusals counted from a real refused connection) next to prom-client's
// process metrics, and no id or address in any label.
import t from 'tap'
import net from 'node:net'
import { once } from 'node:events'
import { initCa } from '../../certs/pki.js'
import { tempDir } from '../helpers/echo.js'
import { sampleOf } from '../agent/_cluster.js'
import { startHopgate } from '../helpers/cli.js'

t.test('hopgate edge: GET /metrics', async (tt) => {
  const dir = await tempDir(tt, 'edge-cli')
  await initCa(dir, { edgeId: 'edge-9' })
  const edge = await startHopgate([
    'edge',
    '--json',
    '--state-dir',
    dir,
    '--tunnel-listen',
    '127.0.0.1:0',
    '--admin-listen',
    '127.0.0.1:0',
  ])
  tt.teardown(() => {
    if (edge.child.exitCode === null) edge.child.kill('SIGKILL')
  })
  const ready = edge.ready as { tunnel: string; admin: string }
  tt.match(ready.admin, /^127\.0\.0\.1:\d+$/, `ready line names the admin port ${edge.stderr()}`)

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
  edge.child.kill('SIGTERM')
  const [code] = await edge.exit
  tt.equal(code, 0, 'SIGTERM exits 0')
})
