// `hopgate runners` (table or --json) and `hopgate runner revoke <id>`, both through the edge admin
// API (edge/admin.ts), so they work against a running edge and revocation closes live sessions at
// once instead of waiting for the edge's next re-read of the deny list.
import type { Command } from 'commander'
import { assertRunnerId } from '../../../edge/routing/types.js'
import { adminCall, adminOption, printJson } from './common.js'

interface RunnerRow {
  runnerId: string
  healthy: boolean
  sessions: number
  projects: number
  draining: boolean
  revoked: boolean
  capacity: { cpus: number; memoryBytes: number; maxProjects: number }
  storage: { freeBytes: number; totalBytes: number }
  leaseRemainingMs: number
}

const GiB = 1024 ** 3

function table(rows: RunnerRow[]): string {
  const head = [
    'RUNNER',
    'HEALTHY',
    'SESSIONS',
    'PROJECTS',
    'CPUS',
    'MEM GiB',
    'FREE GiB',
    'LEASE s',
  ]
  const body = rows.map((r) => [
    r.runnerId + (r.revoked ? ' (revoked)' : r.draining ? ' (draining)' : ''),
    r.healthy ? 'yes' : 'no',
    String(r.sessions),
    `${r.projects}/${r.capacity.maxProjects}`,
    String(r.capacity.cpus),
    (r.capacity.memoryBytes / GiB).toFixed(1),
    (r.storage.freeBytes / GiB).toFixed(1),
    (r.leaseRemainingMs / 1000).toFixed(1),
  ])
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)))
  return (
    [head, ...body]
      .map((cells) =>
        cells
          .map((c, i) => c.padEnd(widths[i]!))
          .join('  ')
          .trimEnd(),
      )
      .join('\n') + '\n'
  )
}

export function registerRunners(program: Command): void {
  program
    .command('runners')
    .description('list the runners the edge knows, with health and live sessions')
    .addOption(adminOption())
    .option('--json', 'print {runners:[...]}')
    .action(async (opts: { admin: string; json?: boolean }) => {
      const out = await adminCall<{ runners: RunnerRow[] }>(opts.admin, 'GET', '/v1/runners')
      if (opts.json) printJson(out)
      else process.stdout.write(out.runners.length ? table(out.runners) : 'no runners\n')
    })

  const runner = program.command('runner').description('act on one runner')
  runner
    .command('revoke <id>')
    .description('deny the runner’s certificates and close its live sessions now')
    .addOption(adminOption())
    .option('--json', 'print {runnerId, revoked, newly, sessionsClosed}')
    .action(async (id: string, opts: { admin: string; json?: boolean }) => {
      assertRunnerId(id)
      const out = await adminCall<{ runnerId: string; newly: boolean; sessionsClosed: number }>(
        opts.admin,
        'POST',
        `/v1/runners/${encodeURIComponent(id)}/revoke`,
      )
      if (opts.json) printJson(out)
      else
        process.stdout.write(
          `runner ${out.runnerId} revoked${out.newly ? '' : ' (already was)'}; ` +
            `${out.sessionsClosed} live session(s) closed\n`,
        )
    })
}
