// The control stream's messages as zod schemas, and the TypeScript types inferred from them
// (docs/PROTOCOL.md "Control stream"). Owns field shapes and bounds and which side may send
// which type; framing, sequence and handshake order live in control.ts, and what a peer does
// with a message (leases, fencing, renewal) belongs to the edge and agent sessions.
import { z } from 'zod'
import { isHostPort, isNodeId, isProjectId } from './fields.js'

/** The control protocol version this code speaks. */
export const CONTROL_VERSION = 1

export type Side = 'agent' | 'edge'

// z.int() is bounded to safe integers, so no JSON number here loses precision.
const count = z.int().min(0)
const port = z.int().min(1).max(65535)
const projectId = z.string().max(36).refine(isProjectId, { error: 'not a lowercase project UUID' })
const nodeId = z.string().max(63).refine(isNodeId, { error: 'not a runner or edge id' })
const hostPort = z.string().max(259).refine(isHostPort, { error: 'not host:port' })
const epoch = z.int().min(1)
const seq = z.int().min(1)
const text = (max: number) => z.string().min(1).max(max)

/** What the agent's registry allows for a project; informational, the agent decides per stream. */
const services = z.object({
  ssh: z.boolean(),
  raw: z.boolean(),
  /** Allowed ports and inclusive ranges `[lo, hi]`. */
  ports: z
    .array(
      z.union([port, z.tuple([port, port]).refine(([lo, hi]) => lo <= hi, { error: 'lo > hi' })]),
    )
    .max(1024),
})
const hostedProject = z.object({ project: projectId, services })

// Lists are capped well above what fits in 64 KiB anyway, so the cap never decides first; an
// agent with more projects than fit in its hello sends the rest in `projects` messages.
const MAX_LIST = 1024

export const helloSchema = z.object({
  type: z.literal('hello'),
  seq,
  /** The highest control version the agent speaks; the welcome names the one used. */
  version: z.int().min(1).max(255),
  /** Informational: the edge takes the id from the certificate and refuses a mismatch. */
  runnerId: nodeId.optional(),
  /** The agent's connection slot: a new session in a slot the runner holds supersedes the old. */
  slot: z.int().min(0).max(63).optional(),
  projects: z.array(hostedProject).max(MAX_LIST),
  capacity: z.object({ maxProjects: count, cpus: count, memoryBytes: count }),
  storage: z
    .object({ freeBytes: count, totalBytes: count })
    .refine((s) => s.freeBytes <= s.totalBytes, { error: 'freeBytes > totalBytes' }),
  directAddress: hostPort.optional(),
  agentVersion: z.string().regex(/^[\x21-\x7e]{1,64}$/),
})

export const welcomeSchema = z.object({
  type: z.literal('welcome'),
  seq,
  version: z.literal(CONTROL_VERSION),
  edgeId: nodeId,
  heartbeatIntervalMs: z.int().min(100).max(3_600_000),
  leaseTtlMs: z.int().min(100).max(86_400_000),
  /** The epochs the edge holds for the projects the agent hosts. */
  routes: z
    .array(z.object({ project: projectId, epoch }))
    .max(MAX_LIST)
    .optional(),
})

export const heartbeatSchema = z.object({
  type: z.literal('heartbeat'),
  seq,
  /** Milliseconds on the agent's own clock; only ever echoed back to it. */
  sentAt: count,
  rttMs: z.number().min(0).max(3_600_000).optional(),
  load: z.object({ streams: count, projects: count }),
  storage: z.object({ freeBytes: count }),
})

export const heartbeatAckSchema = z.object({
  type: z.literal('heartbeatAck'),
  seq,
  echo: count,
  leaseExpiresInMs: count,
})

export const routeUpdateSchema = z.object({
  type: z.literal('routeUpdate'),
  seq,
  project: projectId,
  epoch,
  state: z.enum(['active', 'moving', 'draining']),
})

export const drainSchema = z.object({
  type: z.literal('drain'),
  seq,
  reason: text(256),
  reconnectAfterMs: z.int().min(0).max(86_400_000).optional(),
  /** Edges to connect to first, best first. */
  alternatives: z.array(hostPort).max(16).optional(),
})

export const renewRequestSchema = z.object({
  type: z.literal('renewRequest'),
  seq,
  /** PEM CSR; parsing it is certs/' job, the codec only bounds it. */
  csr: text(16 * 1024),
})

export const renewResponseSchema = z.object({
  type: z.literal('renewResponse'),
  seq,
  /** PEM certificate (chain). */
  cert: text(32 * 1024),
})

export const projectsSchema = z.object({
  type: z.literal('projects'),
  seq,
  added: z.array(hostedProject).max(MAX_LIST),
  removed: z.array(projectId).max(MAX_LIST),
})

export const MESSAGE_TYPES = [
  'hello',
  'welcome',
  'heartbeat',
  'heartbeatAck',
  'routeUpdate',
  'drain',
  'renewRequest',
  'renewResponse',
  'error',
  'projects',
] as const
export type MessageType = (typeof MESSAGE_TYPES)[number]

export const errorSchema = z.object({
  type: z.literal('error'),
  seq,
  /** A catalogue code; a peer may know codes we do not, so only the shape is checked. */
  code: z.string().regex(/^HOPGATE_ERR_[A-Z0-9_]{1,100}$/),
  message: z.string().max(1024),
  /** The type and seq of the message this error answers, if it answers one. */
  about: z.enum(MESSAGE_TYPES).optional(),
  aboutSeq: seq.optional(),
})

export const controlMessageSchema = z.discriminatedUnion('type', [
  helloSchema,
  welcomeSchema,
  heartbeatSchema,
  heartbeatAckSchema,
  routeUpdateSchema,
  drainSchema,
  renewRequestSchema,
  renewResponseSchema,
  errorSchema,
  projectsSchema,
])

export type Hello = z.infer<typeof helloSchema>
export type Welcome = z.infer<typeof welcomeSchema>
export type Heartbeat = z.infer<typeof heartbeatSchema>
export type HeartbeatAck = z.infer<typeof heartbeatAckSchema>
export type RouteUpdate = z.infer<typeof routeUpdateSchema>
export type Drain = z.infer<typeof drainSchema>
export type RenewRequest = z.infer<typeof renewRequestSchema>
export type RenewResponse = z.infer<typeof renewResponseSchema>
export type ControlError = z.infer<typeof errorSchema>
export type ProjectsChange = z.infer<typeof projectsSchema>
export type HostedProject = z.infer<typeof hostedProject>
export type ControlMessage = z.infer<typeof controlMessageSchema>

export const AGENT_MESSAGE_TYPES = [
  'hello',
  'heartbeat',
  'renewRequest',
  'projects',
  'error',
] as const
export const EDGE_MESSAGE_TYPES = [
  'welcome',
  'heartbeatAck',
  'routeUpdate',
  'drain',
  'renewResponse',
  'error',
] as const

export type AgentMessage = Extract<ControlMessage, { type: (typeof AGENT_MESSAGE_TYPES)[number] }>
export type EdgeMessage = Extract<ControlMessage, { type: (typeof EDGE_MESSAGE_TYPES)[number] }>
export type MessageFrom<S extends Side> = S extends 'agent' ? AgentMessage : EdgeMessage

// A Map, not an object: a hostile `type` such as "__proto__" or "constructor" must find nothing.
export const SCHEMA_BY_TYPE: ReadonlyMap<string, z.ZodType<ControlMessage>> = new Map<
  MessageType,
  z.ZodType<ControlMessage>
>([
  ['hello', helloSchema],
  ['welcome', welcomeSchema],
  ['heartbeat', heartbeatSchema],
  ['heartbeatAck', heartbeatAckSchema],
  ['routeUpdate', routeUpdateSchema],
  ['drain', drainSchema],
  ['renewRequest', renewRequestSchema],
  ['renewResponse', renewResponseSchema],
  ['error', errorSchema],
  ['projects', projectsSchema],
])

const SENDERS: ReadonlyMap<string, readonly MessageType[]> = new Map<
  string,
  readonly MessageType[]
>([
  ['agent', AGENT_MESSAGE_TYPES],
  ['edge', EDGE_MESSAGE_TYPES],
])

/** True when `side` may send messages of `type`. */
export function sentBy(side: Side, type: string): boolean {
  return (SENDERS.get(side) ?? []).includes(type as MessageType)
}
