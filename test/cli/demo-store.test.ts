// `hopgate demo --edges 3 --store redis://...` as a user runs it: a real process against a real
// redis-server. Every edge's raw TCP and HTTP ingress reaches the project, including the edge the
// agent holds no session to (edge-to-edge forwarding); SIGTERM exits 0 and removes the run's keys
// while keys the demo did not write (an operator's) stay. A run killed with -9 leaves its keys;
// once its liveness key is gone the next run removes them, and spares runs that are alive.
import t from 'tap'
import net from 'node:net'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, readFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { createInterface } from 'node:readline'
import { Redis } from 'ioredis'
import { redisAvailable, startRedis } from '../helpers/redis.js'
import { RedisClient } from '../../edge/routing/redis-client.js'
import { RedisStore } from '../../edge/routing/redis-store.js'
import { systemClock } from '../../shared/clock.js'
import type { TapTest } from '../helpers/yamux-pair.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

interface Ready {
  project: string
  runner: string
  edges: Array<{ tunnel: string; tcp: string; http: string }>
  services: { tcpEcho: number; http: number }
  token: string
  store?: { kind: string; keyPrefix: string }
}

async function echoThrough(hostPort: string, payload: string): Promise<string> {
  const sock = net.connect(Number(hostPort.split(':')[1]), '127.0.0.1')
  await once(sock, 'connect')
  const chunks: Buffer[] = []
  sock.on('data', (c: Buffer) => chunks.push(c))
  sock.end(payload)
  await once(sock, 'end')
  sock.destroy()
  return Buffer.concat(chunks).toString()
}

/** Every live descendant of `pid` (Linux /proc). */
function descendants(pid: number): number[] {
  let kids: number[]
  try {
    kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .split(/\s+/)
      .filter(Boolean)
      .map(Number)
  } catch {
    return []
  }
  return kids.flatMap((k) => [k, ...descendants(k)])
}

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ')
  } catch {
    return ''
  }
}

async function keysUnder(redis: Redis, pattern: string): Promise<string[]> {
  return (await redis.keys(pattern)).sort()
}

interface Demo {
  child: ChildProcess
  ready: Ready
  exited: Promise<[number | null, string | null]>
  stderr: () => string
}

/** `hopgate demo --json --edges N --store URL` as a process, up to its ready line. */
async function startDemo(t: TapTest, url: string, edges: number): Promise<Demo> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'shared/cli/main.ts', 'demo', '--json', '--edges', String(edges)].concat(
      '--store',
      url,
    ),
    {
      cwd: ROOT,
      env: { ...process.env, HOPGATE_LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  let stderr = ''
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
  const exited = new Promise<[number | null, string | null]>((r) =>
    child.once('exit', (code, signal) => r([code, signal])),
  )
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  const line = await new Promise<string>((resolve, reject) => {
    const rl = createInterface({ input: child.stdout })
    rl.once('line', (l) => {
      rl.close()
      resolve(l)
    })
    void exited.then(([code]) => reject(new Error(`demo exited ${code}: ${stderr}`)))
  })
  return { child, ready: JSON.parse(line) as Ready, exited, stderr: () => stderr }
}

t.test(
  'demo --edges 3 --store redis://: each edge reaches the project; keys gone on exit',
  async (t) => {
    if (!redisAvailable(t)) return
    const server = await startRedis(t)
    const redis = new Redis(server.url)
    t.teardown(() => redis.disconnect())
    // An operator's data under the default prefix and beside it: the demo must not touch it.
    await redis.hset('hopgate:routes', 'p', 'operator route')
    await redis.set('operator:key', 'keep')

    const { child, ready, exited, stderr } = await startDemo(t, server.url, 3)
    t.equal(ready.edges.length, 3, 'three edges in the ready line')
    t.equal(new Set(ready.edges.map((e) => e.tunnel)).size, 3, 'three distinct tunnel listeners')
    t.equal(ready.store?.kind, 'redis', 'the ready line names the shared store')
    const prefix = ready.store?.keyPrefix ?? ''
    t.match(prefix, /^hopgate-demo-[0-9a-f]{16}:$/, 'a key prefix of this run')
    t.ok((await keysUnder(redis, `${prefix}*`)).length > 0, 'the demo keeps its state in Redis')

    // Which edges the runner holds sessions to, as the shared store records it.
    const client = await RedisClient.connect({ url: server.url, keyPrefix: prefix })
    const store = await RedisStore.open({ client, clock: systemClock, edgeId: 'test-reader' })
    const runner = await store.getRunner(ready.runner)
    await store.close()
    await client.close()
    t.same([...(runner?.edges ?? [])].sort(), ['edge-1', 'edge-2'], 'the agent dials two edges')

    for (const [i, e] of ready.edges.entries()) {
      const via = i === 2 ? ' (no session there: forwarded)' : ''
      t.equal(
        await echoThrough(e.tcp, `hello ${i}\n`),
        `hello ${i}\n`,
        `TCP echo via edge-${i + 1}${via}`,
      )
      const res = await fetch(`http://${e.http}/${ready.project}/server/${ready.services.http}/`, {
        headers: { authorization: `Bearer ${ready.token}` },
      })
      const page = await res.text()
      t.equal(res.status, 200, `HTTP ingress via edge-${i + 1}${via}`)
      t.ok(page.includes(ready.project), `the page names the project (edge-${i + 1})`)
    }

    child.kill('SIGTERM')
    const [code, signal] = await exited
    t.same(
      [code, signal],
      [0, null],
      `exits 0 on SIGTERM${stderr() ? `; stderr: ${stderr()}` : ''}`,
    )
    t.same(await keysUnder(redis, `${prefix}*`), [], "the run's keys are gone")
    t.same(
      await keysUnder(redis, '*'),
      ['hopgate:routes', 'operator:key'],
      "the operator's keys are untouched",
    )
    t.equal(await redis.hget('hopgate:routes', 'p'), 'operator route')
  },
)

t.test(
  'a demo killed with -9 leaves its keys until its liveness key expires; the next run removes them',
  async (t) => {
    if (!redisAvailable(t)) return
    const server = await startRedis(t)
    const redis = new Redis(server.url)
    t.teardown(() => redis.disconnect())
    const a = await startDemo(t, server.url, 1)
    const deadPrefix = a.ready.store!.keyPrefix
    const ttl = await redis.pttl(`${deadPrefix}demo:alive`)
    t.ok(ttl > 0 && ttl <= 30_000, `a live run holds a liveness key with a TTL (${ttl} ms)`)
    const sshd = descendants(a.child.pid!).filter((pid) =>
      /^(sshd|\/\S*sshd)\b.*sshd_config/.test(cmdline(pid)),
    )
    t.equal(sshd.length, 1, "the demo's project sshd runs under it")
    a.child.kill('SIGKILL')
    await a.exited
    // Its pipe to the sshd guard closed with it: the sshd does not outlive the demo.
    const gone = Date.now() + 5000
    while (existsSync(`/proc/${sshd[0]}`) && Date.now() < gone) await sleep(50)
    t.notOk(existsSync(`/proc/${sshd[0]}`), 'the sshd is gone after kill -9 of the demo')
    const leaked = await keysUnder(redis, `${deadPrefix}*`)
    t.ok(leaked.length > 1, `kill -9 leaves the run's keys (${leaked.length})`)
    // As if 30 s had passed: nobody renews a dead run's liveness key.
    await redis.del(`${deadPrefix}demo:alive`)
    // Another run that is alive (its key renewed), and a key that only looks like a demo's.
    const live = 'hopgate-demo-fedcba9876543210:'
    await redis.set(`${live}demo:alive`, '1', 'PX', 60_000)
    await redis.hset(`${live}routes`, 'p', 'live run route')
    await redis.set('hopgate-demo-notarun', 'keep')

    const b = await startDemo(t, server.url, 1)
    t.same(await keysUnder(redis, `${deadPrefix}*`), [], "the dead run's keys are gone")
    t.equal(await redis.hget(`${live}routes`, 'p'), 'live run route', "a live run's keys stay")
    t.equal(await redis.get('hopgate-demo-notarun'), 'keep', 'keys outside the pattern stay')
    t.equal(
      await echoThrough(b.ready.edges[0]!.tcp, 'after sweep\n'),
      'after sweep\n',
      'the new run works',
    )
    b.child.kill('SIGTERM')
    t.same(await b.exited, [0, null], `exits 0${b.stderr() ? `; stderr: ${b.stderr()}` : ''}`)
    t.same(
      await keysUnder(redis, '*'),
      [`${live}demo:alive`, `${live}routes`, 'hopgate-demo-notarun'].sort(),
      'only the live run and the look-alike are left',
    )
  },
)

t.test('demo --store with something other than redis:// is refused (exit 2)', async (t) => {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'shared/cli/main.ts', 'demo', '--json', '--store', 'mysql://x'],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  )
  let stderr = ''
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
  const [code] = (await once(child, 'exit')) as [number | null]
  t.equal(code, 2, 'usage error')
  t.match(stderr, /--store/, 'the message names the option')
})
