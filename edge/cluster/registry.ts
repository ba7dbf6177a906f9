// The edge registry: which edges are up, where agents reach them (tunnel address) and where other
// edges reach them (peer address), and whether each is draining. Every edge keeps its own entry
// alive with a lease; an entry whose lease ran out is not listed. The contract plus the in-memory
// implementation (one process, tests); redis-registry.ts shares it across processes. It knows
// nothing about runners or sessions (member.ts) or forwarding (forwarder.ts).
import type { Clock } from '../../shared/clock.js'
import { HopgateError } from '../../shared/errors.js'
import { isValidId } from '../../certs/state.js'

/** What an edge says about itself. Addresses are `host:port` as others must dial them. */
export interface EdgeInfo {
  readonly edgeId: string
  readonly tunnelAddress: string
  readonly peerAddress: string
  readonly draining: boolean
}

export interface EdgeRecord extends EdgeInfo {
  /** Lease end in the reading process's Clock domain (clock.now()), as RunnerRecord.lease. */
  readonly expiresAt: number
}

export interface EdgeRegistry {
  /** Registers or re-registers `info`, granting a lease of `leaseTtlMs`. */
  put(info: EdgeInfo, leaseTtlMs: number): Promise<EdgeRecord>
  /** Every edge whose lease has not run out, by edge id. */
  list(): Promise<EdgeRecord[]>
  /** Forgets an edge at once (a clean shutdown); false if it was not registered. */
  remove(edgeId: string): Promise<boolean>
  close(): Promise<void>
}

const HOST_PORT = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/

/** Refuses what another edge or an agent could not dial, before it is shared with them. */
export function assertEdgeInfo(info: EdgeInfo, leaseTtlMs: number): void {
  const bad = (what: string): never => {
    throw new HopgateError('HOPGATE_ERR_REGISTRY_INVALID', what)
  }
  if (!isValidId(info.edgeId)) bad(`edge id ${JSON.stringify(info.edgeId)}`)
  for (const [name, addr] of [
    ['tunnelAddress', info.tunnelAddress],
    ['peerAddress', info.peerAddress],
  ] as const) {
    const m = HOST_PORT.exec(addr)
    if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) bad(`${name} ${JSON.stringify(addr)}`)
  }
  if (typeof info.draining !== 'boolean') bad('draining')
  if (!(Number.isFinite(leaseTtlMs) && leaseTtlMs > 0)) bad(`lease TTL ${leaseTtlMs} ms`)
}

/** One process's registry: several edges started in one process share an instance. */
export class MemoryEdgeRegistry implements EdgeRegistry {
  private readonly edges = new Map<string, EdgeRecord>()
  private closed = false

  constructor(private readonly clock: Clock) {}

  async put(info: EdgeInfo, leaseTtlMs: number): Promise<EdgeRecord> {
    this.assertOpen()
    assertEdgeInfo(info, leaseTtlMs)
    const rec: EdgeRecord = Object.freeze({
      edgeId: info.edgeId,
      tunnelAddress: info.tunnelAddress,
      peerAddress: info.peerAddress,
      draining: info.draining,
      expiresAt: this.clock.now() + leaseTtlMs,
    })
    this.edges.set(info.edgeId, rec)
    return rec
  }

  async list(): Promise<EdgeRecord[]> {
    this.assertOpen()
    const now = this.clock.now()
    const out: EdgeRecord[] = []
    for (const [id, rec] of this.edges) {
      if (rec.expiresAt > now) out.push(rec)
      else this.edges.delete(id)
    }
    return out.sort((a, b) => (a.edgeId < b.edgeId ? -1 : 1))
  }

  async remove(edgeId: string): Promise<boolean> {
    this.assertOpen()
    return this.edges.delete(edgeId)
  }

  async close(): Promise<void> {
    this.closed = true
  }

  private assertOpen(): void {
    if (this.closed) throw new HopgateError('HOPGATE_ERR_STORE_CLOSED', 'edge registry')
  }
}
