// What the agent's admin socket does with a request: add, remove or list projects in the target
// registry, then tell every live edge session in a `projects` control message, so the edge
// claims routes for new projects and stops routing removed ones here. The registry stays the
// only judge of targets (default deny); nothing sent names a host. With a ProjectState each
// change is saved (project-state.ts) before it takes effect: an answer of ok means it survives a
// restart, a failed save changes nothing.
import { HopgateError } from '../shared/errors.js'
import type { AdminRequest } from './admin-socket.js'
import type { AgentControl } from './control.js'
import { PROJECT_ID, TargetRegistry } from './registry.js'
import type { EpochTable } from './streams.js'
import type { ProjectState } from './project-state.js'

export interface ProjectAdminOptions {
  registry: TargetRegistry
  epochs: EpochTable
  controls(): AgentControl[]
  /** Where runtime changes persist; without it they last until the agent stops. */
  state?: ProjectState
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
        // Validated on a scratch registry first: a refused add must not reach the file.
        new TargetRegistry().set(req.project, req.targets as never)
        await opts.state?.add(req.project, req.targets as never)
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
        // Saved even when not hosted now: a project the YAML lists stays hidden after a restart.
        await opts.state?.remove(req.project)
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
