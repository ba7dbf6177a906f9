// What the bench's main processes (bench/tunnel.ts, bench/ssh.ts) and the middle-process entries
// in this directory say to each other over IPC: one request per step, answered with what the step
// produced.
import type { Pki } from '../lib/links.js'
import type { Reply } from '../lib/procs.js'

/** The edge's SSH ingress for bench/ssh.ts: one account with one key, a collaborator of the project. */
export interface EdgeSshSetup {
  /** Login name on the project's sshd (the demo's: the user the bench runs as). */
  upstreamUser: string
  account: string
  /** The account's public key, an authorized_keys line. */
  publicKey: string
}

export type TunnelCmd =
  | { cmd: 'mem' }
  | { cmd: 'proxy'; target: number; pki: Pki }
  | { cmd: 'tls-b'; target: number; pki: Pki }
  | { cmd: 'tls-a'; next: number; pki: Pki }
  /** Without targetPort no raw TCP ingress; with ssh the SSH ingress too. */
  | { cmd: 'edge'; targetPort?: number; project: string; runnerId: string; ssh?: EdgeSshSetup }
  /** One edge of bench/forward.ts's cluster: its state dir holds the shared CAs already. */
  | {
      cmd: 'cluster-edge'
      stateDir: string
      redisUrl: string
      keyPrefix: string
      project: string
      targetPort: number
    }
  /** With project: also whether the project's route names runnerId yet (routed). */
  | { cmd: 'sessions'; runnerId: string; project?: string }
  /** targetPort: the project's only allowed port; sshPort: its sshd (the `ssh` target). */
  | {
      cmd: 'agent'
      edgePort: number
      token: string
      targetPort?: number
      sshPort?: number
      project: string
    }

export interface TunnelReply extends Reply {
  /** Edge: the tunnel listener's port (for the agent) and a one-time join token. */
  tunnelPort?: number
  token?: string
  sessions?: number
  routed?: boolean
  /** Cluster edge: how many other live edges it knows. */
  peers?: number
  /** Edge with ssh: the SSH ingress port and the upstream public key (authorized_keys line). */
  sshPort?: number
  upstreamKey?: string
}
