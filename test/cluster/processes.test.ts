// Three edge processes (real kill -9 and SIGTERM) sharing a real redis-server as their store
// (`store: redis://`: routes, runners, join tokens, ACL, revocations) and edge registry, two
// agents in this process. A route change made through one edge's admin API is obeyed by the
// other processes within 1 s. A load balancer stand-in sends a steady stream of new connections to
// the edges it last saw ready (/readyz every 100 ms). Edge-1 is killed, edge-3 drained: the
// drained edge loses no connection, and new connections through the survivors succeed within 5 s.
import t from 'tap'
import net from 'node:net'
import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { join } from 'node:path'
import { systemClock } from '../../shared/clock.js'
import { RedisClient } from '../../edge/routing/redis-client.js'
import { RedisStore } from '../../edge/routing/redis-store.js'
import { RedisTokenStore } from '../../certs/redis-tokens.js'
import { startAgent } from '../../agent/agent.js'
import { clusterStateDirs, enroll, report, roundTrip, taggedServer, until } from './helpers.js'
import { redisMissing, startRedis } from '../helpers/redis.js'
import type { TapTest } from '../helpers/yamux-pair.js'

const P1 = '11111111-1111-4111-8111-111111111111' // runner-a
const P2 = '22222222-2222-4222-8222-222222222222' // runner-b
const here = import.meta.dirname

interface EdgeProc {
  child: ChildProcess
  ready: { edgeId: string; tunnel: number; admin: number; tcp: number[] }
  lines: Array<Record<string, unknown>>
  exit: Promise<{ code: number | null; signal: string | null }>
}

async function spawnEdge(tt: TapTest, args: Record<string, unknown>): Promise<EdgeProc> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(here, 'fixtures/edge-proc.ts'), JSON.stringify(args)],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_OPTIONS: '' } },
  )
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
  const exit = new Promise<{ code: number | null; signal: string | null }>((r) =>
    child.once('exit', (code, signal) => r({ code, signal })),
  )
  tt.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await exit
  })
  const lines: Array<Record<string, unknown>> = []
  const ready = await new Promise<EdgeProc['ready']>((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (l) => {
      const v = JSON.parse(l) as Record<string, unknown>
      lines.push(v)
      if (v.event === 'ready') resolve(v as unknown as EdgeProc['ready'])
    })
    void exit.then(() => reject(new Error(`edge exited before ready: ${stderr}`)))
  })
  return { child, ready, lines, exit }
}

/** One user connection: send, hold it open a little (in flight), end, expect the echo. */
function hold(port: number, tag: string, holdMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const c = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true })
    let got = ''
    const timer = setTimeout(() => c.destroy(new Error('timed out')), 10_000)
    c.on('data', (d: Buffer) => (got += d.toString()))
    c.once('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
    c.once('end', () => {
      clearTimeout(timer)
      c.end()
      if (got.endsWith(':x')) resolve()
      else reject(new Error(`bad reply ${JSON.stringify(got)} for ${tag}`))
    })
    c.once('connect', () => {
      c.write('x')
      setTimeout(() => c.end(), holdMs)
    })
  })
}

t.test(
  'kill -9 one edge and drain another under steady load',
  { skip: redisMissing() },
  async (tt) => {
    const redis = await startRedis(tt)
    // The test's own view of the shared store: what the edges recorded, and join tokens.
    const client = await RedisClient.connect({ url: redis.url })
    tt.teardown(() => client.close())
    const store = await RedisStore.open({ client, clock: systemClock, edgeId: 'test-observer' })
    tt.teardown(() => store.close())
    const ids = ['edge-1', 'edge-2', 'edge-3']
    const dirs = await clusterStateDirs(tt, ids)
    const portA = await taggedServer(tt, 'A')
    const portB = await taggedServer(tt, 'B')
    const edges: EdgeProc[] = []
    for (const dir of dirs) {
      edges.push(
        await spawnEdge(tt, {
          stateDir: dir,
          redisUrl: redis.url,
          tcp: [`127.0.0.1:0=${P1}:${portA}`, `127.0.0.1:0=${P2}:${portB}`],
          drain: { gracePeriodMs: 8000, lameDuckMs: 1500 },
        }),
      )
    }
    const [e1, e2, e3] = edges as [EdgeProc, EdgeProc, EdgeProc]
    const addr = (e: EdgeProc): string => `127.0.0.1:${e.ready.tunnel}`
    for (const [runnerId, via, project, port] of [
      ['runner-a', [e1, e2], P1, portA],
      ['runner-b', [e2, e3], P2, portB],
    ] as const) {
      const dir = await enroll(tt, dirs[0]!, e1.ready.tunnel, runnerId, new RedisTokenStore(client))
      const agent = await startAgent({
        stateDir: dir,
        edges: via.map(addr),
        slots: 2,
        projects: { [project]: { host: '127.0.0.1', allowedPorts: [port] } },
        report,
      })
      tt.teardown(() => agent.close())
    }
    await until(
      async () => {
        const a = await store.getRunner('runner-a')
        const b = await store.getRunner('runner-b')
        return a?.edges.join() === 'edge-1,edge-2' && b?.edges.join() === 'edge-2,edge-3'
      },
      'each runner recorded on its two edges',
      15_000,
    )
    tt.pass('runner-a on edge-1,edge-2; runner-b on edge-2,edge-3 (RunnerRecord.edges)')

    // A route change through edge-1's admin API, obeyed by the other processes within 1 s.
    const reply = (e: EdgeProc): Promise<string> => roundTrip(e.ready.tcp[1]!, 'x').catch(() => '')
    tt.same(await Promise.all(edges.map(reply)), ['B:x', 'B:x', 'B:x'], 'P2 through every edge')
    const admin = async (e: EdgeProc, body: Record<string, unknown>): Promise<number> => {
      const epoch = (await store.getRoute(P2))!.epoch
      const res = await fetch(`http://127.0.0.1:${e.ready.admin}/v1/routes/${P2}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ ...body, expectedEpoch: epoch }),
      })
      await res.arrayBuffer()
      return res.status
    }
    tt.equal(await admin(e1, { runner: 'runner-b', state: 'moving' }), 200, 'P2 moving via edge-1')
    const changedAt = Date.now()
    tt.same(
      await Promise.all([e2, e3].map(reply)),
      ['', ''],
      'edge-2 and edge-3 refuse P2 at once (moving)',
    )
    tt.ok(Date.now() - changedAt < 1000, `obeyed within 1 s (${Date.now() - changedAt} ms)`)
    await until(
      () =>
        [e2, e3].every((e) =>
          e.lines.some((l) => l.event === 'tcp-refused' && l.code === 'HOPGATE_ERR_ROUTE_MOVING'),
        ),
      'both refusals say the route is moving',
    )
    tt.equal(await admin(e3, { runner: 'runner-b', state: 'active' }), 200, 'active via edge-3')
    tt.same(
      await Promise.all([e1, e2].map(reply)),
      ['B:x', 'B:x'],
      'edge-1 and edge-2 serve P2 again',
    )
    for (const e of edges) e.lines.splice(0)

    // The load balancer stand-in.
    const ready = new Map<EdgeProc, boolean>(edges.map((e) => [e, true]))
    let polling = true
    const poller = (async () => {
      while (polling) {
        await Promise.all(
          edges.map(async (e) => {
            const ok = await fetch(`http://127.0.0.1:${e.ready.admin}/readyz`, {
              signal: AbortSignal.timeout(500),
            }).then(
              (r) => r.status === 200,
              () => false,
            )
            ready.set(e, ok)
          }),
        )
        await new Promise((r) => setTimeout(r, 100))
      }
    })()
    const results: Array<{ edge: string; at: number; ok: boolean; err?: string; ms?: number }> = []
    let running = true
    let n = 0
    const worker = async (): Promise<void> => {
      while (running) {
        const eligible = edges.filter((e) => ready.get(e))
        const edge = eligible[n++ % Math.max(1, eligible.length)]
        if (!edge) {
          await new Promise((r) => setTimeout(r, 20))
          continue
        }
        const port = edge.ready.tcp[n % 2]!
        const at = Date.now()
        await hold(port, edge.ready.edgeId, 100).then(
          () => results.push({ edge: edge.ready.edgeId, at, ok: true, ms: Date.now() - at }),
          (err: Error) =>
            results.push({ edge: edge.ready.edgeId, at, ok: false, err: err.message }),
        )
      }
    }
    const workers = [worker(), worker(), worker(), worker()]
    await until(() => results.filter((r) => r.ok).length >= 12, 'load warmed up', 30_000)
    // On a failure, the edges' refusal lines say why.
    if (results.some((r) => !r.ok))
      tt.comment(JSON.stringify(edges.flatMap((e) => e.lines.filter((l) => l.event !== 'ready'))))
    tt.same(
      results.filter((r) => !r.ok),
      [],
      `steady load flows, no failure before the kill (${results.length} connections)`,
    )

    const killedAt = Date.now()
    e1.child.kill('SIGKILL')
    await e1.exit
    await new Promise((r) => setTimeout(r, 300))
    e3.child.kill('SIGTERM')
    const drained = await e3.exit
    const drainedLine = e3.lines.find((l) => l.event === 'drained')
    await new Promise((r) => setTimeout(r, 1000))
    running = false
    await Promise.all(workers)
    polling = false
    await poller

    tt.same(drained, { code: 0, signal: null }, 'the drained edge exited 0')
    tt.equal(drainedLine?.inflightCut, 0, 'the drain cut no in-flight stream')
    const e3Results = results.filter((r) => r.edge === 'edge-3')
    // On a failure, what edge-3 said about its refusals and forwards.
    if (e3Results.some((r) => !r.ok)) {
      tt.comment(JSON.stringify(e3.lines.filter((l) => l.event !== 'ready')))
    }
    tt.ok(e3Results.length >= 3, `edge-3 took connections (${e3Results.length})`)
    tt.same(
      e3Results.filter((r) => !r.ok),
      [],
      'the drained edge lost no connection',
    )
    const survivors = results.filter((r) => r.edge === 'edge-2' && r.at >= killedAt)
    const late = survivors.filter((r) => r.at >= killedAt + 5000)
    tt.same(
      survivors.filter((r) => !r.ok && r.at >= killedAt + 5000),
      [],
      'through the survivor, every connection 5 s after the kill succeeds',
    )
    const firstOk = survivors.find((r) => r.ok)
    tt.ok(
      firstOk && firstOk.at - killedAt < 5000,
      'the survivor serves again within 5 s of the kill',
    )
    tt.ok(late.length > 0 || survivors.filter((r) => r.ok).length > 10, 'and keeps serving')
    tt.comment(
      `connections: ${results.length}, failed: ${results.filter((r) => !r.ok).length} ` +
        `(edge-1 before the LB noticed the kill: ${results.filter((r) => !r.ok && r.edge === 'edge-1').length})`,
    )
  },
)
