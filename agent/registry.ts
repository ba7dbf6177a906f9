// The agent's target registry: which projects this runner hosts and where, on this machine, each
// project's services listen. Default deny: the agent dials only what is listed here, so nothing
// on the wire can name a host or address (the SSRF class of Teleport's GHSA-hw4x-mcx5-9q36).
// It owns no sockets and no persistence; the agent loads it from config and the admin socket.
import { z } from 'zod'
import { HopgateError } from '../shared/errors.js'

export const PROJECT_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

export type ServiceName = 'ssh' | 'port' | 'raw'

const port = z.number().int().min(1).max(65535)
/** `8000-8099` or a single port. */
const portRange = z.union([
  port,
  z
    .string()
    .regex(/^\d{1,5}-\d{1,5}$/)
    .transform((s, ctx) => {
      const [lo, hi] = s.split('-').map(Number) as [number, number]
      if (!(lo >= 1 && hi <= 65535 && lo <= hi)) {
        ctx.addIssue({ code: 'custom', message: `bad port range ${s}` })
        return z.NEVER
      }
      return [lo, hi] as const
    }),
])

export const projectTargetsSchema = z
  .object({
    /** Where the project's services listen: loopback or the project's container address. */
    host: z.string().min(1).max(253),
    /** The project's sshd. */
    sshPort: port.optional(),
    /** The project's built-in web server (`/{project}/raw/...`). */
    rawPort: port.optional(),
    /** Ports the edge may reach for `/port/`, `/server/` and raw TCP ingress. */
    allowedPorts: z.array(portRange).max(1024).default([]),
  })
  .strict()

export type ProjectTargetsInput = z.input<typeof projectTargetsSchema>
export type ProjectTargets = z.output<typeof projectTargetsSchema>

export interface Target {
  host: string
  port: number
}

export type Resolution =
  { ok: true; target: Target } | { ok: false; reason: 'unknown-project' | 'refused' }

export class TargetRegistry {
  private readonly projects = new Map<string, ProjectTargets>()

  /** Adds or replaces a project's targets; throws HOPGATE_ERR_CONFIG_INVALID on bad input. */
  set(project: string, targets: ProjectTargetsInput): void {
    if (!PROJECT_ID.test(project)) {
      throw new HopgateError(
        'HOPGATE_ERR_CONFIG_INVALID',
        `not a lowercase project UUID: ${project}`,
      )
    }
    const parsed = projectTargetsSchema.safeParse(targets)
    if (!parsed.success) {
      throw new HopgateError(
        'HOPGATE_ERR_CONFIG_INVALID',
        `project ${project}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
      )
    }
    this.projects.set(project, parsed.data)
  }

  remove(project: string): boolean {
    return this.projects.delete(project)
  }

  /** A project's targets as configured (for `hopgate agent project list`). */
  get(project: string): ProjectTargets | undefined {
    return this.projects.get(project)
  }

  has(project: string): boolean {
    return this.projects.has(project)
  }

  list(): string[] {
    return [...this.projects.keys()].sort()
  }

  get size(): number {
    return this.projects.size
  }

  /** What the hello and `projects` messages announce: which services each project offers. */
  hosted(): Array<{
    project: string
    services: { ssh: boolean; raw: boolean; ports: Array<number | [number, number]> }
  }> {
    return this.list().map((project) => {
      const t = this.projects.get(project)!
      return {
        project,
        services: {
          ssh: t.sshPort !== undefined,
          raw: t.rawPort !== undefined,
          ports: t.allowedPorts.map((p) => (typeof p === 'number' ? p : [p[0], p[1]])),
        },
      }
    })
  }

  /** Where a stream for (project, service, port) may go, or why it may not. */
  resolve(project: string, service: ServiceName, port = 0): Resolution {
    const t = this.projects.get(project)
    if (!t) return { ok: false, reason: 'unknown-project' }
    switch (service) {
      case 'ssh':
        return t.sshPort ? { ok: true, target: { host: t.host, port: t.sshPort } } : refused
      case 'raw':
        return t.rawPort ? { ok: true, target: { host: t.host, port: t.rawPort } } : refused
      case 'port':
        return isAllowed(t, port) ? { ok: true, target: { host: t.host, port } } : refused
    }
  }
}

const refused: Resolution = { ok: false, reason: 'refused' }

function isAllowed(t: ProjectTargets, port: number): boolean {
  if (!Number.isInteger(port) || port < 1 || port > 65535) return false
  return t.allowedPorts.some((p) =>
    typeof p === 'number' ? p === port : p[0] <= port && port <= p[1],
  )
}
