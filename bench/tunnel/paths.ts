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
  /** Resident bytes of the middle processes together (after GC where they are Node). */
  middleRss: (() => Promise<number>) | null
}

type Middle = Child<TunnelCmd, TunnelReply>
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
  const r = await target.request({ cmd: 'init', path: 'tcp', pki })
  if (r.port === undefined) throw new Error('target reported no port')
  return { target, port: r.port }
}

async function port(c: Middle, cmd: TunnelCmd): Promise<number> {
  const r = await c.request(cmd)
  if (r.port === undefined) throw new Error(`${cmd.cmd} reported no port`)
  return r.port
}

function rssOf(children: Middle[]): () => Promise<number> {
  return async () => {
    let total = 0
    for (const c of children) total += (await c.request({ cmd: 'mem' })).mem?.rss ?? NaN
    return total
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
      return { port: targetPort, target, middleRss: null }
    case 'node-proxy': {
      const proxy = middle('relay.ts', cleanups)
      const p = await port(proxy, { cmd: 'proxy', target: targetPort, pki })
      return { port: p, target, middleRss: rssOf([proxy]) }
    }
    case 'tls-2hop': {
      const b = middle('relay.ts', cleanups)
      const a = middle('relay.ts', cleanups)
      const pb = await port(b, { cmd: 'tls-b', target: targetPort, pki })
      const pa = await port(a, { cmd: 'tls-a', next: pb, pki })
      return { port: pa, target, middleRss: rssOf([a, b]) }
    }
    case 'hopgate': {
      const edge = middle('edge.ts', cleanups)
      const agent = middle('agent.ts', cleanups)
      const e = await edge.request({
        cmd: 'edge',
        targetPort,
        project: PROJECT,
        runnerId: RUNNER,
      })
      if (e.port === undefined || e.tunnelPort === undefined || e.token === undefined) {
        throw new Error('edge did not report its ports and a token')
      }
      await agent.request({
        cmd: 'agent',
        edgePort: e.tunnelPort,
        token: e.token,
        targetPort,
        project: PROJECT,
      })
      const end = Date.now() + 15_000
      while ((await edge.request({ cmd: 'sessions', runnerId: RUNNER })).sessions !== 2) {
        if (Date.now() > end) throw new Error('the agent did not bring up 2 sessions in 15 s')
        await new Promise((r) => setTimeout(r, 20))
      }
      return { port: e.port, target, middleRss: rssOf([edge, agent]) }
    }
    case 'ssh-R': {
      const ssh = await startSsh(targetPort, cleanups)
      return { port: ssh.port, target, middleRss: async () => ssh.rss() }
    }
  }
}
