// `hopgate agent project add|remove|list`: changes a running agent's target registry through its
// local admin socket (agent/admin-socket.ts), which the agent passes on to its edges. Talks to
// nothing but that socket; the agent validates (default deny stays) and its typed refusal
// becomes this command's exit code.
import { Option, InvalidArgumentError, type Command } from 'commander'
import { adminSocketPath, callAdminSocket } from '../../../agent/admin-socket.js'
import { HopgateError } from '../../errors.js'
import { printJson } from './common.js'

interface SocketOpts {
  stateDir?: string
  socket?: string
  json?: boolean
}

function socketOf(opts: SocketOpts): string {
  if (opts.socket) return opts.socket
  if (opts.stateDir) return adminSocketPath(opts.stateDir)
  throw new HopgateError('HOPGATE_ERR_AGENT_ADMIN_BAD_REQUEST', 'give --state-dir (or --socket)')
}

const intArg = (v: string): number => {
  if (!/^\d{1,5}$/.test(v)) throw new InvalidArgumentError('want a port number')
  return Number(v)
}
const portArg = (v: string, prev: Array<number | string> | undefined): Array<number | string> => {
  if (!/^\d{1,5}(-\d{1,5})?$/.test(v)) throw new InvalidArgumentError('want a port or lo-hi')
  return [...(prev ?? []), v.includes('-') ? v : Number(v)]
}

function withSocket(cmd: Command): Command {
  return cmd
    .addOption(new Option('--state-dir <dir>', 'agent state directory').env('HOPGATE_STATE_DIR'))
    .option('--socket <path>', 'admin socket path (default <state-dir>/agent/admin.sock)')
    .option('--json', 'print the answer as JSON')
}

export function registerAgentProject(agent: Command): void {
  const project = agent
    .command('project')
    .description("change a running agent's hosted projects (local admin socket)")

  withSocket(
    project
      .command('add <project>')
      .description('host a project: where its services listen on this runner')
      .requiredOption('--host <host>', 'where the project’s services listen (e.g. 127.0.0.1)')
      .option('--ssh-port <port>', 'the project’s sshd', intArg)
      .option('--raw-port <port>', 'the project’s built-in web server', intArg)
      .option('--port <port|lo-hi>', 'a port the edge may reach (repeatable)', portArg),
  ).action(
    async (
      id: string,
      opts: SocketOpts & { host: string; sshPort?: number; rawPort?: number; port?: unknown[] },
    ) => {
      const targets = {
        host: opts.host,
        ...(opts.sshPort !== undefined ? { sshPort: opts.sshPort } : {}),
        ...(opts.rawPort !== undefined ? { rawPort: opts.rawPort } : {}),
        allowedPorts: opts.port ?? [],
      }
      const answer = await callAdminSocket(socketOf(opts), { op: 'add', project: id, targets })
      if (opts.json) printJson(answer)
      else process.stdout.write(`project ${id} added\n`)
    },
  )

  withSocket(
    project.command('remove <project>').description('stop hosting a project on this runner'),
  ).action(async (id: string, opts: SocketOpts) => {
    const answer = await callAdminSocket(socketOf(opts), { op: 'remove', project: id })
    if (opts.json) printJson(answer)
    else process.stdout.write(`project ${id} ${answer.removed ? 'removed' : 'was not hosted'}\n`)
  })

  withSocket(project.command('list').description('the projects this agent hosts')).action(
    async (opts: SocketOpts) => {
      const answer = await callAdminSocket(socketOf(opts), { op: 'list' })
      const projects = (answer.projects ?? []) as Array<{
        project: string
        host: string
        sshPort?: number
        rawPort?: number
        allowedPorts?: Array<number | [number, number]>
      }>
      if (opts.json) return printJson({ projects })
      for (const p of projects) {
        const ports = p.allowedPorts ?? []
        const parts = [
          p.project,
          `host=${p.host}`,
          p.sshPort ? `ssh=${p.sshPort}` : '',
          p.rawPort ? `raw=${p.rawPort}` : '',
          ports.length
            ? `ports=${ports.map((x) => (Array.isArray(x) ? x.join('-') : String(x))).join(',')}`
            : '',
        ]
        process.stdout.write(parts.filter(Boolean).join('  ') + '\n')
      }
    },
  )
}
