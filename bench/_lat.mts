import net from 'node:net'
import { once } from 'node:events'
import { startForwardCluster } from './tunnel/forward-cluster.js'
const echo = net.createServer({ allowHalfOpen: true }, (s) => { s.on('error', () => {}); s.pipe(s) })
echo.listen(0, '127.0.0.1'); await once(echo, 'listening')
const ep = (echo.address() as net.AddressInfo).port
const c = await startForwardCluster({ targetPort: ep, inProcess: process.env.INPROC === '1', ...(process.env.STORE ? { store: process.env.STORE } : {}) })
function connectEcho(port: number): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now(); let t1 = 0
    const s = net.connect({ port, host: '127.0.0.1' }); s.setNoDelay(true)
    s.once('error', reject)
    s.once('connect', () => { t1 = performance.now(); s.write('x') })
    s.once('data', () => { const t2 = performance.now(); resolve([t2 - t0, t1 - t0]); s.destroy() })
  })
}
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]
for (let i = 0; i < 50; i++) { for (const p of [c.direct, c.forwarded]) { try { await connectEcho(p) } catch { await new Promise(r => setTimeout(r, 100)) } } }
const r: Record<string, number[][]> = { echo: [], direct: [], forwarded: [] }
for (let i = 0; i < 300; i++) for (const [k, p] of [['echo', ep], ['direct', c.direct], ['forwarded', c.forwarded]] as const) r[k].push(await connectEcho(p))
for (const k of Object.keys(r)) console.log(k, 'total p50', med(r[k].map(x => x[0])).toFixed(3), 'connect p50', med(r[k].map(x => x[1])).toFixed(3))
await c.close(); echo.close()
