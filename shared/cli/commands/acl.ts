// `hopgate acl grant|revoke|list`: a project's collaborators (the accounts whose user tokens may
// reach it over HTTP and WebSocket), changed through the edge admin API so the running edge drops
// its cached decision at once. The store is the edge's; this command never writes it directly.
import type { Command } from 'commander'
import { assertProjectId } from '../../../edge/routing/types.js'
import { assertAccountId } from '../../../edge/auth/embedded-access.js'
import { adminCall, adminOption, printJson } from './common.js'

interface Change {
  project: string
  account: string
  collaborator: boolean
  changed: boolean
}

export function registerAcl(program: Command): void {
  const acl = program
    .command('acl')
    .description("a project's collaborators: who may reach it through the edge")

  for (const verb of ['grant', 'revoke'] as const) {
    acl
      .command(`${verb} <project> <account>`)
      .description(
        verb === 'grant'
          ? 'make an account a collaborator of a project'
          : 'remove an account from a project (takes effect on its next request)',
      )
      .addOption(adminOption())
      .option('--json', 'print {project, account, collaborator, changed}')
      .action(async (project: string, account: string, opts: { admin: string; json?: boolean }) => {
        assertProjectId(project)
        assertAccountId(account)
        const out = await adminCall<Change>(
          opts.admin,
          verb === 'grant' ? 'PUT' : 'DELETE',
          `/v1/acl/${project}/${encodeURIComponent(account)}`,
        )
        if (opts.json) return printJson(out)
        const what = out.collaborator ? 'is a collaborator of' : 'is not a collaborator of'
        process.stdout.write(`${account} ${what} ${project}${out.changed ? '' : ' (unchanged)'}\n`)
      })
  }

  acl
    .command('list <project>')
    .description("print a project's collaborators, one per line")
    .addOption(adminOption())
    .option('--json', 'print {project, accounts}')
    .action(async (project: string, opts: { admin: string; json?: boolean }) => {
      assertProjectId(project)
      const out = await adminCall<{ project: string; accounts: string[] }>(
        opts.admin,
        'GET',
        `/v1/acl/${project}`,
      )
      if (opts.json) return printJson(out)
      process.stdout.write(out.accounts.map((a) => `${a}\n`).join(''))
    })
}
