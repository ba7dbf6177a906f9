// `hopgate ssh-key add|remove|list <account>`: accounts' SSH public keys, through the edge admin
// API (edge/admin.ts), which validates the key line and owns the access store. Keys are named by
// their OpenSSH SHA256 fingerprint.
import { readFile } from 'node:fs/promises'
import type { Command } from 'commander'
import { HopgateError } from '../../errors.js'
import type { SshKeyRecord } from '../../../edge/auth/access-store.js'
import { assertAccountId } from '../../../edge/auth/embedded-access.js'
import { adminCall, adminOption, printJson } from './common.js'

const keysPath = (account: string): string => `/v1/accounts/${encodeURIComponent(account)}/ssh-keys`

export function registerSshKey(program: Command): void {
  const cmd = program.command('ssh-key').description("an account's SSH public keys")

  cmd
    .command('add <account> <keyfile>')
    .description('add a public key (an authorized_keys line; - reads stdin)')
    .addOption(adminOption())
    .option('--json', 'print {key}')
    .action(async (account: string, keyfile: string, opts: { admin: string; json?: boolean }) => {
      assertAccountId(account)
      const text = keyfile === '-' ? await readStdin() : await readFile(keyfile, 'utf8')
      const line = text.split('\n').find((l) => l.trim() && !l.trim().startsWith('#'))
      if (!line) throw new HopgateError('HOPGATE_ERR_SSH_KEY_INVALID', 'no key line')
      const out = await adminCall<{ key: SshKeyRecord }>(opts.admin, 'POST', keysPath(account), {
        key: line.trim(),
      })
      if (opts.json) printJson(out)
      else process.stdout.write(`${out.key.fingerprint} ${out.key.type} ${out.key.comment}\n`)
    })

  cmd
    .command('remove <account> <fingerprint>')
    .description('remove a key by its SHA256:... fingerprint')
    .addOption(adminOption())
    .action(async (account: string, fingerprint: string, opts: { admin: string }) => {
      assertAccountId(account)
      await adminCall(
        opts.admin,
        'DELETE',
        `${keysPath(account)}/${encodeURIComponent(fingerprint)}`,
      )
      process.stdout.write(`removed ${fingerprint}\n`)
    })

  cmd
    .command('list <account>')
    .description("list an account's keys")
    .addOption(adminOption())
    .option('--json', 'print {keys}')
    .action(async (account: string, opts: { admin: string; json?: boolean }) => {
      assertAccountId(account)
      const out = await adminCall<{ keys: SshKeyRecord[] }>(opts.admin, 'GET', keysPath(account))
      if (opts.json) return printJson(out)
      for (const k of out.keys) process.stdout.write(`${k.fingerprint} ${k.type} ${k.comment}\n`)
    })
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = []
  for await (const c of process.stdin as AsyncIterable<Buffer>) chunks.push(c)
  return Buffer.concat(chunks).toString('utf8')
}
