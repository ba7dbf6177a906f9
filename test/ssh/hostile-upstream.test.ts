// A hostile project sshd (hostile-sshd.ts, its own process) behind the real tunnel: a channel
// window that never opens, a zero max packet, floods of channel opens, global requests and
// channel requests, and a channel open or exec/shell request never answered.
// For each, through the edge with real OpenSSH clients: the edge cuts the upstream within 5 s,
// the user's ssh ends with a message naming the code (no hang), the edge's event loop never
// stalls (a correctness bound, not a performance one), and another user's sessions to another
// project (a real OpenSSH sshd) keep working during and after. A stall is time the loop spent
// busy between two ticks: the smaller of the wall gap and this process's CPU time in it, so a
// machine shared with other work (which delays ticks without using our CPU) does not count.
import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { tempDir } from '../helpers/echo.js'
import type { TapTest } from '../helpers/yamux-pair.js'
import { Q, addKey, run, sshOpts, startCluster, startSshd, writeUserKey } from './_helpers.js'
import { loadEdgeKey } from '../../edge/ssh/host-key.js'

const MODES = {
  'zero-window': 'a1f0c2d4-0000-4000-8000-000000000001',
  'zero-packet': 'a1f0c2d4-0000-4000-8000-000000000002',
  'flood-opens': 'a1f0c2d4-0000-4000-8000-000000000003',
  'flood-global': 'a1f0c2d4-0000-4000-8000-000000000004',
  'flood-chanreq': 'a1f0c2d4-0000-4000-8000-000000000005',
  'silent-open': 'a1f0c2d4-0000-4000-8000-000000000006',
  'silent-exec': 'a1f0c2d4-0000-4000-8000-000000000007',
} as const
type Mode = keyof typeof MODES

/** The edge's stall cut-off in this test; the default (4 s) keeps production within 5 s. */
const STALLED_WINDOW_MS = 1500
/** The edge's reply deadline in this test; the default (30 s) is unit-tested on a manual clock. */
const REPLY_TIMEOUT_MS = 2000
const CUT_OFF_MS = 5000
const MAX_LOOP_STALL_MS = 200

/** The longest busy gap between 10 ms ticks, ms (see the module comment). */
function stallMeter(): { stop(): { stallMs: number; wallMs: number } } {
  let last = performance.now()
  let lastCpu = process.cpuUsage()
  let stallMs = 0
  let wallMs = 0
  const timer = setInterval(() => {
    const now = performance.now()
    const cpu = process.cpuUsage(lastCpu)
    const wall = now - last
    stallMs = Math.max(stallMs, Math.min(wall, (cpu.user + cpu.system) / 1000))
    wallMs = Math.max(wallMs, wall)
    last = now
    lastCpu = process.cpuUsage()
  }, 10)
  return {
    stop: () => {
      clearInterval(timer)
      return { stallMs, wallMs }
    },
  }
}

/** `p`'s value, or NaN after `ms`: a guard that never fires fails an assertion, not tap's timeout. */
async function bounded(p: Promise<number>, ms: number): Promise<number> {
  let timer: NodeJS.Timeout | undefined
  const v = await Promise.race([p, new Promise<number>((r) => (timer = setTimeout(r, ms, NaN)))])
  clearTimeout(timer)
  return v
}

interface Hostile {
  port: number
  /** Resolves at the next event of this name, with performance.now() at its arrival. */
  next(event: 'hostile' | 'closed'): Promise<number>
}

async function startHostile(tt: TapTest, mode: Mode): Promise<Hostile> {
  const script = fileURLToPath(new URL('./hostile-sshd.ts', import.meta.url))
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', script, mode], {
    // stdin is a pipe only so the child exits when this process dies without its teardown.
    stdio: ['pipe', 'pipe', 'inherit'],
  })
  tt.teardown(() => void child.kill('SIGTERM'))
  const waiters = new Map<string, ((at: number) => void)[]>()
  const seen = new Map<string, number[]>()
  let portResolve: (p: number) => void = () => {}
  const port = new Promise<number>((r) => (portResolve = r))
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const at = performance.now()
    const msg = JSON.parse(line) as { port?: number; event?: string }
    if (msg.port) return portResolve(msg.port)
    const name = msg.event!
    const w = waiters.get(name)?.shift()
    if (w) w(at)
    else seen.set(name, [...(seen.get(name) ?? []), at])
  })
  return {
    port: await port,
    next: (event) =>
      new Promise((resolve) => {
        const early = seen.get(event)?.shift()
        if (early !== undefined) return resolve(early)
        waiters.set(event, [...(waiters.get(event) ?? []), resolve])
      }),
  }
}

t.test('a hostile project sshd is cut off; the edge and other users carry on', async (tt) => {
  const edgeDir = await tempDir(tt, 'edge')
  const work = await tempDir(tt, 'work')
  const upstreamKey = await loadEdgeKey(edgeDir, 'upstream_ed25519')
  const [sshd, ...hostiles] = await Promise.all([
    startSshd(tt, [upstreamKey.publicLine]),
    ...Object.keys(MODES).map((m) => startHostile(tt, m as Mode)),
  ])
  const hostile = Object.fromEntries(Object.keys(MODES).map((m, i) => [m, hostiles[i]!])) as Record<
    Mode,
    Hostile
  >
  const c = await startCluster(
    tt,
    {
      [Q]: { sshPort: sshd.port },
      ...Object.fromEntries(
        Object.entries(MODES).map(([m, p]) => [p, { sshPort: hostile[m as Mode].port }]),
      ),
    },
    {
      upstreamGuards: {
        stalledWindowMs: STALLED_WINDOW_MS,
        requestReplyTimeoutMs: REPLY_TIMEOUT_MS,
      },
    },
    edgeDir,
  )
  const alice = await writeUserKey(work, 'alice')
  const bob = await writeUserKey(work, 'bob')
  await addKey(c.edge, 'alice', alice.publicLine)
  await addKey(c.edge, 'bob', bob.publicLine)
  for (const p of Object.values(MODES)) await c.edge.access.grant(p, 'alice')
  await c.edge.access.grant(Q, 'bob')
  const aliceBase = [...sshOpts(c, alice.path), '-p', String(c.sshPort)]
  const bobBase = [...sshOpts(c, bob.path), '-p', String(c.sshPort)]
  const bobSession = (): ReturnType<typeof run> =>
    run('ssh', [...bobBase, `${Q}@127.0.0.1`, 'echo ok'], { timeoutMs: 20_000 })

  const HOSTILE = 'HOPGATE_ERR_SSH_UPSTREAM_HOSTILE'
  const TIMEOUT = 'HOPGATE_ERR_SSH_UPSTREAM_TIMEOUT'
  /** What the user runs: `cat` by exec, or (-tt, no command) a shell with a pty. */
  const EXEC = ['cat']
  // No escape character: the random input holds `~^Z` and the like, which would suspend ssh.
  const SHELL = ['-tt', '-e', 'none']
  const cases: { mode: Mode; what: string; code: string; args?: string[]; notBefore?: number }[] = [
    {
      mode: 'zero-window',
      what: 'a channel window of 0 that never opens while the user sends data',
      code: HOSTILE,
      notBefore: STALLED_WINDOW_MS,
    },
    { mode: 'zero-packet', what: 'a max packet size of 0', code: HOSTILE },
    {
      mode: 'flood-opens',
      what: 'a flood of channel opens the edge never asked for',
      code: HOSTILE,
    },
    { mode: 'flood-global', what: 'a flood of global requests', code: HOSTILE },
    {
      mode: 'flood-chanreq',
      what: 'a flood of channel requests on the session channel',
      code: HOSTILE,
    },
    {
      mode: 'silent-open',
      what: 'a session channel open never answered',
      code: TIMEOUT,
      notBefore: REPLY_TIMEOUT_MS,
    },
    {
      mode: 'silent-exec',
      what: 'an exec request never answered',
      code: TIMEOUT,
      notBefore: REPLY_TIMEOUT_MS,
    },
    {
      mode: 'silent-exec',
      what: 'a pty-req and shell never answered (ssh -tt)',
      code: TIMEOUT,
      args: SHELL,
      notBefore: REPLY_TIMEOUT_MS,
    },
  ]
  for (const { mode, what, code, args = EXEC, notBefore } of cases) {
    await tt.test(what, async (t2) => {
      const h = hostile[mode]
      const loop = stallMeter()
      const began = h.next('hostile')
      const cut = h.next('closed')
      const user = run('ssh', [...aliceBase, `${MODES[mode]}@127.0.0.1`, ...args], {
        input: randomBytes(1024 * 1024),
        timeoutMs: 30_000,
      })
      const startedAt = await bounded(began, 10_000)
      t2.ok(startedAt > 0, 'the hostile sshd started misbehaving')
      const during = bobSession()
      const cutAt = await bounded(cut, CUT_OFF_MS + 3000)
      const r = await user
      const userEndAt = performance.now()
      const after = await bobSession()
      const duringR = await during
      const { stallMs, wallMs } = loop.stop()
      t2.ok(cutAt - startedAt < CUT_OFF_MS, `upstream cut off within 5 s (${cutAt - startedAt} ms)`)
      if (notBefore !== undefined) {
        // The edge starts the clock when it sends; the sshd reports on arrival, a little later.
        t2.ok(
          cutAt - startedAt >= notBefore - 100,
          `not before the allowance (${notBefore} ms): a window may open, an answer come, late`,
        )
      }
      t2.equal(r.code, 255, "the user's ssh ends with 255")
      t2.match(r.stderr, new RegExp(code), `and says why (${code})`)
      t2.ok(userEndAt - startedAt < CUT_OFF_MS + 2000, 'the user is not left hanging')
      t2.equal(duringR.code, 0, "another user's session to another project works meanwhile")
      t2.equal(duringR.stdout.toString(), 'ok\n')
      t2.equal(after.code, 0, 'and after')
      t2.equal(after.stdout.toString(), 'ok\n')
      t2.ok(
        stallMs < MAX_LOOP_STALL_MS,
        `event loop never stalled (longest busy gap ${stallMs.toFixed(1)} ms, wall ${wallMs.toFixed(1)} ms)`,
      )
    })
  }
})
