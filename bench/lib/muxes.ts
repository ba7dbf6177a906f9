// The paths under test and how each one turns a link into streams: mux paths load a MuxPeer
// factory (ours, or the peer adapters in bench/peers/) lazily, so the bench still runs when one
// of them has not landed yet; tls/tcp paths have no mux and use one link per logical stream.
import type { Duplex } from 'node:stream'

export const ALL_PATHS = ['hopgate', 'yamux-js', 'libp2p-yamux', 'tls', 'tcp'] as const
export type PathName = (typeof ALL_PATHS)[number]
export type Role = 'client' | 'server'

/** Same shape as bench/peers/types.ts, restated so this file compiles before that one exists. */
export interface MuxPeer {
  name: string
  openStream(): Promise<Duplex>
  onStream(cb: (s: Duplex) => void): void
  ping?(): Promise<number>
  goAway?(): void
  close(): Promise<void>
}
export type MuxFactory = (transport: Duplex, role: Role) => MuxPeer | Promise<MuxPeer>

export function isMux(path: PathName): boolean {
  return path !== 'tls' && path !== 'tcp'
}

/** Bulk-transfer caps: yamux-js as shipped moves ~2.6 MB/s, a full run would take minutes. */
export const BYTE_CAPS: Partial<Record<PathName, number>> = { 'yamux-js': 16 * 1024 * 1024 }
/** Idle-stream caps: yamux-js never forgets an inbound stream and RSTs the 257th per session. */
export const IDLE_CAPS: Partial<Record<PathName, number>> = { 'yamux-js': 250 }

// Our Session's surface as the brief documents it; checked structurally at load time.
interface SessionLike {
  openStream(): Duplex
  on(event: 'stream', cb: (s: Duplex) => void): unknown
  ping(): Promise<number>
  goAway?(): void
  close(): unknown
}
type SessionCtor = new (t: Duplex, o: { role: Role }) => SessionLike

function hopgateFactory(Session: SessionCtor): MuxFactory {
  return (transport, role) => {
    const s = new Session(transport, { role })
    return {
      name: 'hopgate',
      openStream: async () => s.openStream(),
      onStream: (cb) => void s.on('stream', cb),
      ping: () => s.ping(),
      goAway: () => s.goAway?.(),
      close: async () => void (await s.close()),
    }
  }
}

// Non-literal specifiers keep tsc from requiring modules that other people are still writing.
const SPECS: Record<string, [spec: string, exportName: string]> = {
  hopgate: ['../../shared/yamux/index.js', 'Session'],
  'yamux-js': ['../peers/yamux-js.js', 'yamuxJsPeer'],
  'libp2p-yamux': ['../peers/libp2p.js', 'libp2pPeer'],
}

export async function loadMux(path: PathName): Promise<MuxFactory> {
  const entry = SPECS[path]
  if (!entry) throw new Error(`${path} is not a mux path`)
  const [spec, exportName] = entry
  let mod: Record<string, unknown>
  try {
    mod = (await import(spec)) as Record<string, unknown>
  } catch (err) {
    throw new Error(`${path}: cannot load ${spec}: ${(err as Error).message.split('\n')[0]}`, {
      cause: err,
    })
  }
  const found = mod[exportName]
  if (typeof found !== 'function') throw new Error(`${path}: ${spec} has no ${exportName}`)
  return path === 'hopgate' ? hopgateFactory(found as SessionCtor) : (found as MuxFactory)
}
