// `hopgate ssh upstream-key`: prints the public half of the edge's upstream key (created in the
// state directory on first use), the line a project's sshd puts in authorized_keys so the edge
// can log in for its users. Reads the state directory, so it works before the edge first runs.
import type { Command } from 'commander'
import { loadEdgeKey } from '../../../edge/ssh/host-key.js'
import { printJson } from './common.js'

export function registerSsh(program: Command): void {
  const cmd = program.command('ssh').description('SSH ingress helpers')
  cmd
    .command('upstream-key')
    .description("print the edge's upstream public key (for projects' authorized_keys)")
    .option('--state-dir <dir>', 'edge state directory', '/var/lib/hopgate/edge')
    .option('--host-key', 'print the host key instead (for known_hosts)')
    .option('--json', 'print {publicKey, fingerprint}')
    .action(async (opts: { stateDir: string; hostKey?: boolean; json?: boolean }) => {
      const key = await loadEdgeKey(
        opts.stateDir,
        opts.hostKey ? 'host_ed25519' : 'upstream_ed25519',
      )
      if (opts.json) printJson({ publicKey: key.publicLine, fingerprint: key.fingerprint })
      else process.stdout.write(key.publicLine + '\n')
    })
}
