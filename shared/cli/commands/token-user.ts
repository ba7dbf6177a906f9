// `hopgate token user --account <id> [--ttl 1h]`: mints a user token (edge/auth/user-tokens.ts)
// with the signing key in the edge's state directory (created 0600 on first use, shared with the
// running edge). Prints the token once; nothing about it is stored. It grants no access by itself:
// `hopgate acl grant` does.
import { InvalidArgumentError, Option, type Command } from 'commander'
import { UserTokens, MAX_USER_TOKEN_TTL_MS } from '../../../edge/auth/user-tokens.js'
import { assertAccountId } from '../../../edge/auth/embedded-access.js'
import { parseDuration, printJson } from './common.js'

function parseTtl(value: string): number {
  const ms = parseDuration(value)
  if (ms > MAX_USER_TOKEN_TTL_MS) throw new InvalidArgumentError('at most 7 days')
  if (ms < 1000) throw new InvalidArgumentError('at least 1s')
  return ms
}

export function registerTokenUser(program: Command): void {
  // `hopgate token` is registered by ca.ts (join tokens); user tokens are one more subcommand.
  const token =
    program.commands.find((c) => c.name() === 'token') ??
    program.command('token').description('tokens')
  token
    .command('user')
    .description('mint a user token (EdDSA) for HTTP and WebSocket access through the edge')
    .requiredOption('--account <id>', 'account id: 1-64 of [a-z0-9._@-]')
    .addOption(new Option('--ttl <duration>', 'lifetime, e.g. 15m, 1h, 7d').argParser(parseTtl))
    .addOption(
      new Option('--state-dir <dir>', 'edge state directory')
        .env('HOPGATE_STATE_DIR')
        .makeOptionMandatory(),
    )
    .option('--json', 'print {token, account, expiresAt}')
    .action(async (opts: { account: string; ttl?: number; stateDir: string; json?: boolean }) => {
      assertAccountId(opts.account)
      const tokens = await UserTokens.open(opts.stateDir)
      const { token: value, claims } = tokens.mint({
        account: opts.account,
        ...(opts.ttl !== undefined ? { ttlMs: opts.ttl } : {}),
      })
      const expiresAt = new Date(claims.exp * 1000).toISOString()
      if (opts.json) return printJson({ token: value, account: claims.sub, expiresAt })
      process.stdout.write(`${value}\n`)
    })
}
