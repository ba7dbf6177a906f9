// Child-process entry for the client end of the idle-memory measurement. It runs in its own
// fresh process (not the bench's main one) because RSS never shrinks: after bulk transfers in
// the main process, freed pages would silently absorb the growth we are trying to measure.
import type { Duplex } from 'node:stream'
import { dial, type Dialer } from './links.js'
import { memSnapshot, type Reply, type Request } from './procs.js'
import { echoOne } from './protocol.js'

let dialer: Dialer | undefined
const held: Duplex[] = []
const FILL_CONCURRENCY = 16

async function oneIdle(d: Dialer): Promise<Duplex> {
  const s = await d.open()
  s.on('error', () => {})
  await echoOne(s)
  return s
}

async function handle(req: Request): Promise<Reply> {
  if (req.cmd === 'dial') {
    dialer = await dial(req.path, req.port, req.pki)
    // Warm the code paths so the baseline already includes one-time costs (JIT, lazy tables).
    const warm = await oneIdle(dialer)
    warm.end()
    await new Promise((r) => setTimeout(r, 200))
    return { id: req.id, mem: memSnapshot() }
  }
  if (req.cmd === 'fill') {
    const d = dialer
    if (!d) throw new Error('fill before dial')
    let next = 0
    const worker = async () => {
      while (next < req.n) {
        next++
        held.push(await oneIdle(d))
      }
    }
    await Promise.all(Array.from({ length: FILL_CONCURRENCY }, worker))
    return { id: req.id, mem: memSnapshot(), streams: held.length }
  }
  throw new Error(`unknown command ${req.cmd}`)
}

process.on('disconnect', () => process.exit(0))
process.on('message', (raw) => {
  const req = raw as Request
  handle(req).then(
    (r) => process.send?.(r),
    (err: unknown) => process.send?.({ id: req.id, error: (err as Error).message }),
  )
})
