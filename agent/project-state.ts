// The agent's runtime project changes on disk (<stateDir>/agent/projects.json, 0600): what
// `hopgate agent project add|remove` did, kept as an overlay on the YAML config so it survives a
// restart. It owns the file format, the atomic save and the merge rule; it owns no sockets and
// does not validate targets itself (the registry does, on load and on every add).
//
// Precedence, newest intent wins: the YAML config is the base; a runtime `add` replaces or adds
// that project's targets; a runtime `remove` hides the project even if the YAML lists it. A later
// `add` lifts a removal. A damaged file stops the agent with a typed error: it is never replaced.
import { readFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { z } from 'zod'
import { agentPath, ensurePrivateDir, writeFileAtomic } from '../certs/state.js'
import { HopgateError } from '../shared/errors.js'
import { PROJECT_ID, TargetRegistry, type ProjectTargetsInput } from './registry.js'

export const PROJECT_STATE_FILE = 'projects.json'

export function projectStatePath(stateDir: string): string {
  return agentPath(stateDir, PROJECT_STATE_FILE)
}

const fileSchema = z
  .object({
    version: z.literal(1),
    /** Projects added (or re-targeted) at runtime: their targets as given to `project add`. */
    added: z.record(z.string().regex(PROJECT_ID), z.unknown()),
    /** Projects removed at runtime; they stay hidden even where the YAML config lists them. */
    removed: z.array(z.string().regex(PROJECT_ID)),
  })
  .strict()

export interface ProjectOverlay {
  added: Record<string, ProjectTargetsInput>
  removed: string[]
}

export class ProjectState {
  private overlay: ProjectOverlay
  // Admin requests from several connections may overlap: saves go out one at a time, in order.
  private chain: Promise<void> = Promise.resolve()

  private constructor(
    readonly path: string,
    overlay: ProjectOverlay,
  ) {
    this.overlay = overlay
  }

  /**
   * Reads the overlay; a missing file is an empty one. Anything unreadable, not JSON, not this
   * shape, or naming targets the registry refuses throws HOPGATE_ERR_AGENT_PROJECTS_STATE_INVALID.
   */
  static async load(stateDir: string): Promise<ProjectState> {
    const path = projectStatePath(stateDir)
    let text: string
    try {
      text = await readFile(path, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        return new ProjectState(path, { added: {}, removed: [] })
      }
      throw invalid(path, 'unreadable', err)
    }
    let value: unknown
    try {
      value = JSON.parse(text)
    } catch (err) {
      throw invalid(path, 'not JSON', err)
    }
    const parsed = fileSchema.safeParse(value)
    if (!parsed.success) {
      const why = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)
      throw invalid(path, why.join('; '))
    }
    const overlay = {
      added: parsed.data.added as Record<string, ProjectTargetsInput>,
      removed: parsed.data.removed,
    }
    // Each entry must be one the registry would take now, or the agent would start half-loaded.
    const probe = new TargetRegistry()
    for (const [project, targets] of Object.entries(overlay.added)) {
      try {
        probe.set(project, targets)
      } catch (err) {
        throw invalid(path, `added.${project}`, err)
      }
    }
    return new ProjectState(path, overlay)
  }

  /** The YAML config's projects with the runtime overlay applied. */
  merge(config: Record<string, ProjectTargetsInput>): Record<string, ProjectTargetsInput> {
    const out: Record<string, ProjectTargetsInput> = { ...config }
    for (const project of this.overlay.removed) delete out[project]
    return { ...out, ...this.overlay.added }
  }

  /** Records a runtime add and saves; resolves once the file is on disk. */
  add(project: string, targets: ProjectTargetsInput): Promise<void> {
    return this.save((o) => ({
      added: { ...o.added, [project]: targets },
      removed: o.removed.filter((p) => p !== project),
    }))
  }

  /** Records a runtime removal and saves; resolves once the file is on disk. */
  remove(project: string): Promise<void> {
    return this.save((o) => {
      const added = { ...o.added }
      delete added[project]
      return { added, removed: [...new Set([...o.removed, project])].sort() }
    })
  }

  private save(change: (o: ProjectOverlay) => ProjectOverlay): Promise<void> {
    const run = async (): Promise<void> => {
      const next = change(this.overlay)
      const body = JSON.stringify({ version: 1, ...next }, null, 2) + '\n'
      try {
        await ensurePrivateDir(dirname(this.path))
        await writeFileAtomic(this.path, body, { mode: 0o600 })
      } catch (err) {
        throw new HopgateError('HOPGATE_ERR_AGENT_PROJECTS_SAVE_FAILED', this.path, {
          cause: err,
        })
      }
      // Only what reached the disk counts: a failed save leaves the overlay as it was.
      this.overlay = next
    }
    const done = this.chain.then(run)
    this.chain = done.catch(() => {})
    return done
  }
}

function invalid(path: string, detail: string, cause?: unknown): HopgateError {
  return new HopgateError(
    'HOPGATE_ERR_AGENT_PROJECTS_STATE_INVALID',
    `${path}: ${detail}`,
    cause === undefined ? undefined : { cause },
  )
}
