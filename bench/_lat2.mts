import net from 'node:net'
import { once } from 'node:events'
import { spawn } from 'node:child_process'
import { startForwardCluster } from './tunnel/forward-cluster.js'
const echo = net.createServer({ allowHalfOpen: true }, (s) => { s.on('error', () => {}); s.pipe(s) })
echo.listen(0, '127.0.0.1'); await once(echo, 'listening')
const ep = (echo.address() as net.AddressInfo).port
const c = await startForwardCluster({ targetPort: ep })
function connectEcho(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now()
    const s = net.connect({ port, host: '127.0.0.1' }); s.setNoDelay(true)
    s.once('error', reject)
    s.once('connect', () => { s.write('x') })
    s.once('data', () => { resolve(performance.now() - t0); s.destroy() })
  })
}
for (let i = 0; i < 50; i++) { for (const p of [c.direct, c.forwarded]) { try { await connectEcho(p) } catch { await new Promise(r => setTimeout(r, 100)) } } }
const st = Object.entries(c.pids).map(([k, pid]) => spawn('strace', ['-f', '-tt', '-e', 'trace=!futex,getpid,mprotect,madvise,mmap,munmap', '-s', '0', '-p', String(pid), '-o', `/tmp/hg/lat-${k}.txt`], { stdio: 'ignore' }))
await new Promise(r => setTimeout(r, 1000))
const d = new Date(); console.log('start', d.toISOString())
for (let i = 0; i < 3; i++) { console.log('conn', new Date().toISOString(), (await connectEcho(c.direct)).toFixed(3)); await new Promise(r => setTimeout(r, 200)) }
for (const p of st) p.kill('SIGINT')
await new Promise(r => setTimeout(r, 500))
await c.close(); echo.close()
