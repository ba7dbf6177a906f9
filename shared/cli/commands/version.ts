// `hopgate version`: the package version, and with --json the runtime it runs on.
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Command } from 'commander'

let cached: string | undefined

/** hopgate's version from its package.json, found upward from this file (source or dist/). */
export function packageVersion(): string {
  if (cached) return cached
  let dir = dirname(fileURLToPath(import.meta.url))
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
        name?: unknown
        version?: unknown
      }
      if (pkg.name === 'hopgate' && typeof pkg.version === 'string') return (cached = pkg.version)
    } catch {
      // no package.json here: keep walking up
    }
    const parent = dirname(dir)
    if (parent === dir) return (cached = '0.0.0-unknown')
    dir = parent
  }
}

export function registerVersion(program: Command): void {
  program
    .command('version')
    .description('print the hopgate version')
    .option('--json', 'print {"version","node"} as one JSON line')
    .action((opts: { json?: boolean }) => {
      const version = packageVersion()
      if (opts.json) {
        process.stdout.write(JSON.stringify({ version, node: process.version }) + '\n')
      } else {
        process.stdout.write(`hopgate ${version} (node ${process.version})\n`)
      }
    })
}
