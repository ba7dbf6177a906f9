// The paths `hopgate bench` compares, each set up fresh in its own processes: the bench target
// (bench/lib/server.ts, plain TCP, 'U'/'D'/'E') and the middle processes between the client (the
// bench's main process) and it. Every path's client side is a plain TCP connection per stream.
import { Child } from '../lib/procs.js'
import type { Pki } from '../lib/links.js'
import type { Cleanups } from '../lib/measure.js'
import { startSsh, sshAvailable } from './ssh.js'
import type { TunnelCmd, TunnelReply } from './types.js'

export const TUNNEL_PATHS = ['hopgate', 'raw-tcp', 'node-proxy', 'tls-2hop', 'ssh-R'] as const
export type TunnelPath = (typeof TUNNEL_PATHS)[number]

export interface Topology {
  /** Where the client connects (127.0.0.1). */
  port: number
  target: Child
  /**
   * Memory of the middle processes together: RSS, and for Node processes (after forced GCs)
   * the V8 heap plus external memory (Buffers), which page and allocator noise do not blur.
   */
  middleMem: (() => Promise<MiddleMem>) | null
  /** The middle processes' pids (for CPU accounting from /proc); empty for raw-tcp. */
  pids: number[]
}

type Middle = Child<TunnelCmd, TunnelReply>
export interface MiddleMem {
  rss: number
  /** heapUsed + external, summed over Node middles; null when a middle is not Node (sshd). */
  js: number | null
  /** The external part of `js`, per middle process. */
  external?: number[]
}
/** Starting a middle process (an edge makes a CA: RSA keys) can take long on a loaded box. */
const SETUP_MS = 120_000
const PROJECT = '0b5e7c4a-3f1d-4c2a-9e8b-6d7f5a4b3c21'
const RUNNER = 'bench-runner'

function middle(file: string, cleanups: Cleanups): Middle {
  const c = Child.spawn<TunnelCmd, TunnelReply>(new URL(file, import.meta.url))
  cleanups.push(() => c.kill())
  return c
}

async function startTarget(pki: Pki, cleanups: Cleanups): Promise<{ target: Child; port: number }> {
  const target = Child.spawn('server.ts')
  cleanups.push(() => target.kill())
  const r = await target.request({ cmd: 'init', path: 'tcp', pki }, SETUP_MS)
  if (r.port === undefined) throw new Error('target reported no port')
  return { target, port: r.port }
}

async function port(c: Middle, cmd: TunnelCmd): Promise<number> {
  const r = await c.request(cmd, SETUP_MS)
  if (r.port === undefined) throw new Error(`${cmd.cmd} reported no port`)
  return r.port
}

function memOf(children: Middle[]): () => Promise<MiddleMem> {
  return async () => {
    let rss = 0
    let js = 0
    const external: number[] = []
    for (const c of children) {
      const m = (await c.request({ cmd: 'mem' }, SETUP_MS)).mem
      if (!m) throw new Error('a middle process reported no memory')
      rss += m.rss
      js += m.heapUsed + m.external
      external.push(m.external)
    }
    return { rss, js, external }
  }
}

/** Why a path cannot run here, or null. */
export function unavailable(path: TunnelPath): string | null {
  if (path === 'ssh-R') return sshAvailable()
  return null
}

export async function setup(path: TunnelPath, pki: Pki, cleanups: Cleanups): Promise<Topology> {
  const { target, port: targetPort } = await startTarget(pki, cleanups)
  switch (path) {
    case 'raw-tcp':
      return { port: targetPort, target, middleMem: null, pids: [] }
    case 'node-proxy': {
      const proxy = middle('relay.ts', cleanups)
      const p = await port(proxy, { cmd: 'proxy', target: targetPort, pki })
      return { port: p, target, middleMem: memOf([proxy]), pids: [proxy.pid!] }
    }
    case 'tls-2hop': {
      const b = middle('relay.ts', cleanups)
      const a = middle('relay.ts', cleanups)
      const pb = await port(b, { cmd: 'tls-b', target: targetPort, pki })
      const pa = await port(a, { cmd: 'tls-a', next: pb, pki })
      return { port: pa, target, middleMem: memOf([a, b]), pids: [a.pid!, b.pid!] }
    }
    case 'hopgate': {
      const edge = middle('edge.ts', cleanups)
      const agent = middle('agent.ts', cleanups)
      const e = await edge.request(
        {
          cmd: 'edge',
          targetPort,
          project: PROJECT,
          runnerId: RUNNER,
        },
        SETUP_MS,
      )
      if (e.port === undefined || e.tunnelPort === undefined || e.token === undefined) {
        throw new Error('edge did not report its ports and a token')
      }
      await agent.request(
        {
          cmd: 'agent',
          edgePort: e.tunnelPort,
          token: e.token,
          targetPort,
          project: PROJECT,
        },
        SETUP_MS,
      )
      const end = Date.now() + 15_000
      while ((await edge.request({ cmd: 'sessions', runnerId: RUNNER })).sessions !== 2) {
        if (Date.now() > end) throw new Error('the agent did not bring up 2 sessions in 15 s')
        await new Promise((r) => setTimeout(r, 20))
      }
      return {
        port: e.port,
        target,
        middleMem: memOf([edge, agent]),
        pids: [edge.pid!, agent.pid!],
      }
    }
    case 'ssh-R': {
      const ssh = await startSsh(targetPort, cleanups)
      return {
        port: ssh.port,
        target,
        middleMem: async () => ({ rss: ssh.rss(), js: null }),
        pids: ssh.pids(),
      }
    }
  }
}
