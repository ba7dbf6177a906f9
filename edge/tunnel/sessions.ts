// The edge's table of live agent sessions: which yamux sessions each runner holds to this edge,
// which one new streams use, and superseding. An agent keeps several sessions (slots 0, 1, ...);
// a new session in a slot a runner already holds replaces the old one (a reconnect after a
// half-open TCP path), and new streams go to the newest live session. It opens no sockets and
// decides nothing about routing: the router says which runner, this says which session.
import { EventEmitter } from 'node:events'
import type { Session } from '../../shared/yamux/index.js'
import { GoAwayCode } from '../../shared/yamux/index.js'
import type { Drain } from '../../shared/tunnel/control-schema.js'

/** Drain advice as the edge writes it (the control channel stamps the seq). */
export type DrainAdvice = Omit<Drain, 'type' | 'seq'>

export interface AgentSession {
  runnerId: string
  /** The agent's connection slot (0 .. sessions-1); a new session in a held slot supersedes. */
  slot: number
  /** How this session was made; nothing above the registry behaves differently for either. */
  connector: 'reverse' | 'direct'
  session: Session
  /** When it registered, in clock milliseconds. */
  since: number
  /** Sends drain advice on this session's control stream (absent in tests without one). */
  drain?(advice: Omit<Drain, 'seq'>): void
}

export interface SessionTableEvents {
  added: [entry: AgentSession]
  removed: [entry: AgentSession, reason: 'closed' | 'superseded' | 'revoked']
}

export class SessionTable extends EventEmitter<SessionTableEvents> {
  private readonly byRunner = new Map<string, AgentSession[]>()

  /** Registers a session; a live one in the same slot is superseded (GoAway, then closed). */
  add(entry: AgentSession): void {
    const old = this.byRunner.get(entry.runnerId)?.find((e) => e.slot === entry.slot)
    const list = this.byRunner.get(entry.runnerId) ?? []
    list.push(entry)
    this.byRunner.set(entry.runnerId, list)
    // Dropped after the new one is in: whoever hears 'removed' can already pick the successor.
    if (old) this.drop(old, 'superseded')
    entry.session.once('close', () => this.drop(entry, 'closed'))
    this.emit('added', entry)
    // Streams still open on the old session may finish; it just takes no new ones.
    old?.session.goAway(GoAwayCode.Normal)
  }

  /** The session new streams to `runnerId` should use: the newest that is still open. */
  pick(runnerId: string): AgentSession | undefined {
    const list = this.byRunner.get(runnerId)
    if (!list) return undefined
    for (let i = list.length - 1; i >= 0; i--) {
      const e = list[i]!
      if (!e.session.closed && e.session.remoteGoAway === undefined) return e
    }
    return undefined
  }

  sessions(runnerId: string): readonly AgentSession[] {
    return this.byRunner.get(runnerId) ?? []
  }

  runners(): string[] {
    return [...this.byRunner.keys()].sort()
  }

  /** Closes every session of a revoked runner at once. */
  revoke(runnerId: string): number {
    const list = [...(this.byRunner.get(runnerId) ?? [])]
    for (const e of list) {
      this.drop(e, 'revoked')
      e.session.close()
    }
    return list.length
  }

  /**
   * Advises every session of `runnerId` (or of every runner) to move: the agent opens a
   * replacement first, then lets the old session go (docs/PROTOCOL.md "Drain"). Returns how
   * many sessions were told. The sessions stay usable until the agent retires them.
   */
  drain(advice: DrainAdvice, runnerId?: string): number {
    let n = 0
    const runners = runnerId === undefined ? this.runners() : [runnerId]
    for (const id of runners) {
      for (const e of this.sessions(id)) {
        if (!e.drain) continue
        e.drain({ type: 'drain', ...advice })
        n++
      }
    }
    return n
  }

  get size(): number {
    let n = 0
    for (const list of this.byRunner.values()) n += list.length
    return n
  }

  private drop(entry: AgentSession, reason: 'closed' | 'superseded' | 'revoked'): void {
    const list = this.byRunner.get(entry.runnerId)
    if (!list) return
    const i = list.indexOf(entry)
    if (i < 0) return
    list.splice(i, 1)
    if (list.length === 0) this.byRunner.delete(entry.runnerId)
    this.emit('removed', entry, reason)
  }
}
