// What the bench's main process (bench/tunnel.ts) and its middle-process entries in this directory
// say to each other over IPC: one request per step, answered with what the step produced.
import type { Pki } from '../lib/links.js'
import type { Reply } from '../lib/procs.js'

export type TunnelCmd =
  | { cmd: 'mem' }
  | { cmd: 'proxy'; target: number; pki: Pki }
  | { cmd: 'tls-b'; target: number; pki: Pki }
  | { cmd: 'tls-a'; next: number; pki: Pki }
  | { cmd: 'edge'; targetPort: number; project: string; runnerId: string }
  | { cmd: 'sessions'; runnerId: string }
  | { cmd: 'agent'; edgePort: number; token: string; targetPort: number; project: string }

export interface TunnelReply extends Reply {
  /** Edge: the tunnel listener's port (for the agent) and a one-time join token. */
  tunnelPort?: number
  token?: string
  sessions?: number
}
