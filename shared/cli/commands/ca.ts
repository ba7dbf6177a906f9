// `hopgate ca init` and `hopgate token create`: the edge's PKI and runner join tokens, both kept in
// the edge's state directory (certs/pki.ts, certs/tokens.ts). `ca init` never overwrites what
// exists, so running it twice is safe; a join token is printed once and stored only hashed.
import { InvalidArgumentError, Option, type Command } from 'commander'
import { initCa, loadPki } from '../../../certs/pki.js'
import { createJoinToken, FileTokenStore, MAX_TOKEN_TTL_MS } from '../../../certs/tokens.js'
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
    .option('--json', 'print {token, runnerId, expiresAt}')
    .action(async (opts: { stateDir: string; runner: string; ttl: number; json?: boolean }) => {
      const pki = await loadPki(opts.stateDir)
      const now = Date.now()
      const value = await createJoinToken(new FileTokenStore(opts.stateDir), {
        runnerId: opts.runner,
        ttlMs: opts.ttl,
        edgeCaFingerprint: pki.edgeCa.fingerprint.base64url,
        // One instant for the stored record and the printed expiry, so the two agree exactly.
        clock: { ...wallClock, now: () => now },
      })
      const expiresAt = new Date(now + opts.ttl).toISOString()
      if (opts.json) printJson({ token: value, runnerId: opts.runner, expiresAt })
      else process.stdout.write(value + '\n')
    })
}
