#!/usr/bin/env node
// `hopgate`, the one binary: parses the command line and maps every way out to an exit code.
// Each subcommand lives in ./commands/<name>.ts and exports register<Name>(program); add new ones
// (edge, agent, route, bench, ...) there and to the list below.
//
// Exit codes (docs/ARCHITECTURE.md, "Command line"):
//   0 ok, 1 failure, 2 usage (anything commander refuses), 78 configuration error.
import { inspect } from 'node:util'
import { Command, CommanderError } from 'commander'
import { isHopgateError } from '../errors.js'
import { registerAgent } from './commands/agent.js'
import { registerCa, registerToken } from './commands/ca.js'
import { registerDemo } from './commands/demo.js'
import { registerEdge } from './commands/edge.js'
import { registerRoute } from './commands/route.js'
import { registerRunners } from './commands/runners.js'
import { registerBench } from './commands/bench.js'
import { registerConfig } from './commands/config.js'
import { registerAcl } from './commands/acl.js'
import { registerTokenUser } from './commands/token-user.js'
import { registerSshKey } from './commands/ssh-key.js'
import { registerSsh } from './commands/ssh.js'
import { packageVersion, registerVersion } from './commands/version.js'

const EXIT_OK = 0
const EXIT_FAILURE = 1
const EXIT_USAGE = 2
// 78 (configuration error) comes from the error itself: HopgateError.exitCode, see shared/errors.ts.

function buildProgram(): Command {
  const program = new Command('hopgate')
    .description(
      'Ingress for multi-tenant notebook platforms: an edge and per-runner agents joined by yamux over mutual TLS.',
    )
    .version(packageVersion(), '-V, --version', 'print the version')
    // Throw instead of exiting, so run() alone decides the exit code. Subcommands created with
    // program.command() after this inherit it.
    .exitOverride()
    .showHelpAfterError('(run hopgate --help for usage)')

  registerDemo(program)
  registerVersion(program)
  registerCa(program)
  registerToken(program)
  registerEdge(program)
  registerAgent(program)
  registerRunners(program)
  registerRoute(program)
  registerBench(program)
  registerConfig(program)
  // HTTP ingress (issue 4): user tokens and the ACL.
  registerTokenUser(program)
  registerAcl(program)
  registerSshKey(program)
  registerSsh(program)
  return program
}

/** Runs one command line; resolves with the process exit code, never rejects. */
async function run(argv: readonly string[]): Promise<number> {
  const program = buildProgram()
  try {
    await program.parseAsync([...argv])
    return EXIT_OK
  } catch (err) {
    return exitCodeFor(err)
  }
}

function exitCodeFor(err: unknown): number {
  if (err instanceof CommanderError) {
    // Commander already printed its message (or the help / version) to the right stream.
    return err.exitCode === 0 ? EXIT_OK : EXIT_USAGE
  }
  process.stderr.write(`hopgate: ${describe(err)}\n`)
  if (isHopgateError(err) && err.exitCode !== undefined) return err.exitCode
  return EXIT_FAILURE
}

/** The message, its typed code if any, and the chain of causes, on one line. */
function describe(err: unknown): string {
  const parts: string[] = []
  let current: unknown = err
  for (let depth = 0; current !== undefined && depth < 5; depth++) {
    if (current instanceof Error) {
      parts.push(isHopgateError(current) ? `${current.message} [${current.code}]` : current.message)
      current = current.cause
    } else {
      parts.push(typeof current === 'string' ? current : inspect(current))
      break
    }
  }
  return parts.join(': ')
}

const code = await run(process.argv)
process.exitCode = code
// Commands close what they open; if something still holds the event loop, do not hang forever.
setTimeout(() => process.exit(code), 3000).unref()
