import { connPairs } from '../helpers/conn-pairs.js'
import { Session } from '../../shared/yamux/index.js'
const which = process.argv[2] ?? 'tcp'
const m = connPairs.find((x) => x.name === which)!
const p = await m.make()
const c = new Session(p.a, { role: 'client' })
const s = new Session(p.b, { role: 'server' })
const total = 1024 * 1024 * 1024
let got = 0
const done = new Promise<void>((res) =>
  s.on('stream', (st) => {
    st.on('data', (d: Buffer) => {
      got += d.length
    })
    st.on('end', () => {
      res()
      st.end()
    })
  }),
)
const st = c.openStream()
const chunk = Buffer.alloc(65536, 7)
const t0 = performance.now()
for (let off = 0; off < total; off += 65536) {
  if (!st.write(chunk)) await new Promise((r) => st.once('drain', r))
}
st.end()
await done
const ms = performance.now() - t0
console.log(which, got === total, (total / 1e6 / (ms / 1000)).toFixed(0), 'MB/s upload in-process')
c.close()
await p.close()
