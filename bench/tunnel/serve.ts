// The IPC loop every middle-process entry runs: answers 'mem' (gc'd heap/RSS) itself, hands every
// other request to the entry, prints one JSON ready line per started role on stdout (the bench
// routes a child's stdout to its stderr), and exits with its parent.
import { memSnapshot } from '../lib/procs.js'
import type { TunnelCmd, TunnelReply } from './types.js'

type Req = TunnelCmd & { id: number }
export type Handler = (req: Req) => Promise<Omit<TunnelReply, 'id'>>

export function serve(role: string, handle: Handler, onExit: () => void = () => {}): void {
  process.on('exit', onExit)
  process.on('disconnect', () => process.exit(0))
  // Child.kill() sends SIGTERM: exiting through process.exit runs onExit (the temp state goes).
  process.on('SIGTERM', () => process.exit(0))
  process.on('message', (raw) => {
    const req = raw as Req
    const run = async (): Promise<TunnelReply> => {
      if (req.cmd === 'mem') return { id: req.id, mem: memSnapshot() }
      const r = await handle(req)
      if (r.port !== undefined || r.tunnelPort !== undefined) {
        const { port, tunnelPort } = r
        process.stdout.write(
          `${JSON.stringify({ ready: role, step: req.cmd, pid: process.pid, port, tunnelPort })}\n`,
        )
      }
      return { id: req.id, ...r }
    }
    run().then(
      (r) => process.send?.(r),
      (err: unknown) => process.send?.({ id: req.id, error: (err as Error).message }),
    )
  })
}
