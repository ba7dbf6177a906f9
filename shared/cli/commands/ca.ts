// `hopgate ca init` and `hopgate token create`: the edge's PKI and runner join tokens, both kept in
// the edge's state directory (certs/pki.ts, certs/tokens.ts), or with `--store redis://` the
// tokens in the store the edges share (certs/redis-tokens.ts). `ca init` never overwrites what
// exists, so running it twice is safe; a join token is printed once and stored only hashed.
import { InvalidArgumentError, Option, type Command } from 'commander'
import { initCa, loadPki } from '../../../certs/pki.js'
import {
  createJoinToken,
  FileTokenStore,
  MAX_TOKEN_TTL_MS,
  type TokenStore,
} from '../../../certs/tokens.js'
import { RedisTokenStore } from '../../../certs/redis-tokens.js'
import { parseStoreChoice } from '../../../edge/stores.js'
import { DEFAULT_KEY_PREFIX, RedisClient } from '../../../edge/routing/redis-client.js'
import { wallClock } from '../../../certs/state.js'
import { parseDuration, printJson } from './common.js'

const stateDirOption = (): Option =>
  new Option('--state-dir <dir>', 'edge state directory')
    .env('HOPGATE_STATE_DIR')
    .makeOptionMandatory()

const collect = (value: string, previous: string[] | undefined): string[] => [
  ...(previous ?? []),
  value,
]

function parseKeyPrefix(value: string): string {
  // The same rule as the edge's storeKeyPrefix (shared/cli/commands/edge.ts).
  if (!/^[A-Za-z0-9:._-]{1,64}$/.test(value)) {
    throw new InvalidArgumentError('1-64 of A-Z a-z 0-9 : . _ -')
  }
  return value
}

/** Where join tokens go: the edge's state dir, or the shared Redis store; close() after use. */
async function openTokenStore(
  stateDir: string,
  store: string,
  keyPrefix: string,
): Promise<{ tokens: TokenStore; close(): Promise<void> }> {
  const choice = parseStoreChoice(store)
  if (choice.kind === 'embedded') {
    return { tokens: new FileTokenStore(stateDir), close: async () => {} }
  }
  const client = await RedisClient.connect({ url: choice.url, keyPrefix })
  return { tokens: new RedisTokenStore(client), close: () => client.close() }
}

function parseTtl(value: string): number {
  const ms = parseDuration(value)
  if (ms > MAX_TOKEN_TTL_MS) throw new InvalidArgumentError('at most 30 days')
  return ms
}

export function registerCa(program: Command): void {
  const ca = program.command('ca').description('the edge and runner certificate authorities')
  ca.command('init')
    .description(
      'create the runner CA, the edge CA and the edge certificates (keeps existing ones)',
    )
    .addOption(stateDirOption())
    .option('--edge-id <id>', 'id in the edge client certificate', 'edge')
    .option('--dns <name>', 'DNS name of the edge server certificate (repeatable)', collect)
    .option('--ip <addr>', 'IP address of the edge server certificate (repeatable)', collect)
    .option('--json', 'print {stateDir, edgeId, created, edgeCaFingerprint}')
    .action(
      async (opts: {
        stateDir: string
        edgeId: string
        dns?: string[]
        ip?: string[]
        json?: boolean
      }) => {
        const { pki, created } = await initCa(opts.stateDir, {
          edgeId: opts.edgeId,
          ...(opts.dns ? { dns: opts.dns } : {}),
          ...(opts.ip ? { ips: opts.ip } : {}),
        })
        const out = {
          stateDir: opts.stateDir,
          edgeId: pki.edgeId,
          created,
          edgeCaFingerprint: pki.edgeCa.fingerprint.base64url,
        }
        if (opts.json) return printJson(out)
        process.stdout.write(
          `CA in ${out.stateDir} (edge ${out.edgeId}); created: ${created.join(', ') || 'nothing, all present'}\n` +
            `edge CA fingerprint (sha256, base64url): ${out.edgeCaFingerprint}\n`,
        )
      },
    )
}

interface TokenCreateOptions {
  stateDir: string
  runner: string
  ttl: number
  store: string
  storeKeyPrefix: string
  json?: boolean
}

export function registerToken(program: Command): void {
  const token = program.command('token').description('runner join tokens')
  token
    .command('create')
    .description('print a single-use join token for one runner id')
    .addOption(stateDirOption())
    .requiredOption('--runner <id>', 'runner id the token enrolls')
    .addOption(
      new Option('--ttl <duration>', 'lifetime, e.g. 15m, 24h')
        .argParser(parseTtl)
        .default(15 * 60_000, '15m'),
    )
    .addOption(
      new Option(
        '--store <store>',
        'where the edges look tokens up: embedded (the state dir) or redis://host:port[/db]',
      )
        .env('HOPGATE_STORE')
        .default('embedded'),
    )
    .addOption(
      new Option('--store-key-prefix <prefix>', 'Redis key prefix, the same as the edges use')
        .env('HOPGATE_STORE_KEY_PREFIX')
        .argParser(parseKeyPrefix)
        .default(DEFAULT_KEY_PREFIX),
    )
    .option('--json', 'print {token, runnerId, expiresAt}')
    .action(async (opts: TokenCreateOptions) => {
      // The edge CA's pin comes from the state dir either way: every edge shares that CA.
      const pki = await loadPki(opts.stateDir)
      const now = Date.now()
      const store = await openTokenStore(opts.stateDir, opts.store, opts.storeKeyPrefix)
      let value: string
      try {
        value = await createJoinToken(store.tokens, {
          runnerId: opts.runner,
          ttlMs: opts.ttl,
          edgeCaFingerprint: pki.edgeCa.fingerprint.base64url,
          // One instant for the stored record and the printed expiry, so the two agree exactly.
          clock: { ...wallClock, now: () => now },
        })
      } finally {
        await store.close()
      }
      const expiresAt = new Date(now + opts.ttl).toISOString()
      if (opts.json) printJson({ token: value, runnerId: opts.runner, expiresAt })
      else process.stdout.write(value + '\n')
    })
}
