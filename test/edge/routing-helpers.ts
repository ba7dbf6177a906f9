// Fixtures shared by the routing tests: throwaway state directories (removed in teardown), embedded
// stores closed in teardown, project ids and runner registrations, and an edge and agent joined
// by one real mutual-TLS yamux session with runner-a routed. No assertions live here.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { systemClock, type ManualClock } from '../../shared/clock.js'
import { Session } from '../../shared/yamux/index.js'
import { Router } from '../../edge/routing/router.js'
import { SessionTable } from '../../edge/tunnel/sessions.js'
import { connPairs } from '../helpers/conn-pairs.js'
import { testConfig } from '../helpers/yamux-pair.js'
import { EmbeddedStore, type EmbeddedStoreOptions } from '../../edge/routing/embedded-store.js'
import type { RunnerInfo } from '../../edge/routing/types.js'
import type { TapTest } from '../helpers/yamux-pair.js'

export type { TapTest }

export const GiB = 1024 ** 3

export async function tempStateDir(tt: TapTest): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'hopgate-routing-'))
  tt.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

/** Opens a store on `stateDir`; teardown closes it unless the test already did. */
export async function openStore(
  tt: TapTest,
  stateDir: string,
  clock: ManualClock,
  extra: Partial<EmbeddedStoreOptions> = {},
): Promise<EmbeddedStore> {
  // 0 ms pacing keeps tests fast; the coalescing test sets its own interval.
  const store = await EmbeddedStore.open({ stateDir, clock, flushIntervalMs: 0, ...extra })
  tt.teardown(() => store.close())
  return store
}

/** A valid lowercase project UUID, distinct per n. */
export function project(n: number): string {
  return `0000000${n % 10}-0000-4000-8000-${n.toString(16).padStart(12, '0')}`
}

export function runnerInfo(over: Partial<RunnerInfo> & { freeGiB?: number } = {}): RunnerInfo {
  const { freeGiB = 50, ...rest } = over
  return {
    capacity: { maxProjects: 10, cpus: 4, memoryBytes: 8 * GiB },
    storage: { freeBytes: freeGiB * GiB, totalBytes: 100 * GiB },
    ...rest,
  }
}

/**
 * An edge's routing (embedded store with runner-a registered, a router, a session table) and one
 * mutual-TLS yamux session to an agent side the test serves itself; all closed in teardown.
 */
export async function edgeAgentPair(tt: TapTest) {
  const store = await openStore(tt, await tempStateDir(tt), systemClock as unknown as ManualClock)
  await store.putRunner('runner-a', runnerInfo(), 60_000)
  const router = new Router({ store, clock: systemClock })
  const pair = await connPairs.find((m) => m.name === 'tls')!.make()
  const edgeSession = new Session(pair.b, { role: 'server', config: testConfig })
  const agentSession = new Session(pair.a, { role: 'client', config: testConfig })
  tt.teardown(async () => {
    edgeSession.close()
    agentSession.close()
    await pair.close()
  })
  const sessions = new SessionTable()
  sessions.add({
    runnerId: 'runner-a',
    slot: 0,
    connector: 'reverse',
    session: edgeSession,
    since: 0,
  })
  return { store, router, sessions, edgeSession, agentSession }
}
