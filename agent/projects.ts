// What the agent's admin socket does with a request: add, remove or list projects in the target
// registry, then tell every live edge session in a `projects` control message, so the edge
// claims routes for new projects and stops routing removed ones here. The registry stays the
// only judge of targets (default deny); nothing sent names a host.
import { HopgateError } from '../shared/errors.js'
import type { AdminRequest } from './admin-socket.js'
import type { AgentControl } from './control.js'
import { PROJECT_ID, type TargetRegistry } from './registry.js'
import type { EpochTable } from './streams.js'

export interface ProjectAdminOptions {
  registry: TargetRegistry
  epochs: EpochTable
  controls(): AgentControl[]
  onChange?(detail: { op: 'add' | 'remove'; project: string }): void
}

export function projectAdmin(
  opts: ProjectAdminOptions,
): (req: AdminRequest) => Promise<Record<string, unknown>> {
  const { registry } = opts
  return async (req) => {
    switch (req.op) {
      case 'list':
        return { projects: registry.list().map((p) => ({ project: p, ...registry.get(p) })) }
      case 'add': {
        registry.set(req.project, req.targets as never)
        const hosted = registry.hosted().filter((h) => h.project === req.project)
        for (const c of opts.controls()) c.projectsChanged(hosted, [])
        opts.onChange?.({ op: 'add', project: req.project })
        return { project: req.project, ...registry.get(req.project) }
      }
      case 'remove': {
        if (!PROJECT_ID.test(req.project)) {
          throw new HopgateError('HOPGATE_ERR_CONFIG_INVALID', `not a project UUID: ${req.project}`)
        }
        const removed = registry.remove(req.project)
        if (removed) {
          opts.epochs.forget(req.project)
          for (const c of opts.controls()) c.projectsChanged([], [req.project])
          opts.onChange?.({ op: 'remove', project: req.project })
        }
        return { project: req.project, removed }
      }
    }
  }
}
