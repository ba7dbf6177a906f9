import t from 'tap'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { z } from 'zod'
import { configLeaves, loadConfig } from '../shared/config.js'

const schema = z
  .object({
    stateDir: z.string().default('/var/lib/hopgate').describe('where state lives'),
    tunnel: z
      .object({
        listen: z.string().default('0.0.0.0:7443'),
        keepAliveIntervalMs: z.number().int().min(0).default(15000).describe('milliseconds'),
        edges: z.array(z.string()).default([]),
        compress: z.boolean().default(false),
      })
      .strict()
      .default({ listen: '0.0.0.0:7443', keepAliveIntervalMs: 15000, edges: [], compress: false }),
    logLevel: z.enum(['debug', 'info', 'warn']).default('info'),
  })
  .strict()

const dir = mkdtempSync(join(tmpdir(), 'hopgate-config-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
const file = (name: string, text: string): string => {
  const p = join(dir, name)
  writeFileSync(p, text)
  return p
}

t.test('every leaf has one env var and one flag derived from its path', async (tt) => {
  const leaves = configLeaves(schema)
  tt.same(
    leaves.map((l) => [l.path.join('.'), l.env, l.flag, l.kind]),
    [
      ['stateDir', 'HOPGATE_STATE_DIR', '--state-dir', 'string'],
      ['tunnel.listen', 'HOPGATE_TUNNEL_LISTEN', '--tunnel-listen', 'string'],
      [
        'tunnel.keepAliveIntervalMs',
        'HOPGATE_TUNNEL_KEEP_ALIVE_INTERVAL_MS',
        '--tunnel-keep-alive-interval-ms',
        'number',
      ],
      ['tunnel.edges', 'HOPGATE_TUNNEL_EDGES', '--tunnel-edges', 'array'],
      ['tunnel.compress', 'HOPGATE_TUNNEL_COMPRESS', '--tunnel-compress', 'boolean'],
      ['logLevel', 'HOPGATE_LOG_LEVEL', '--log-level', 'enum'],
    ],
  )
  tt.equal(leaves[2]!.defaultValue, 15000)
  tt.equal(leaves[2]!.description, 'milliseconds')
})

t.test('defaults < file < env < flags', async (tt) => {
  tt.same(loadConfig(schema).tunnel.keepAliveIntervalMs, 15000, 'default')
  const f = file(
    'a.yaml',
    'version: 1\ntunnel:\n  keepAliveIntervalMs: 2000\n  listen: 127.0.0.1:1\n',
  )
  tt.equal(loadConfig(schema, { file: f }).tunnel.keepAliveIntervalMs, 2000, 'file over default')
  const env = { HOPGATE_TUNNEL_KEEP_ALIVE_INTERVAL_MS: '3000', HOPGATE_TUNNEL_EDGES: 'a:1, b:2' }
  const c = loadConfig(schema, { file: f, env })
  tt.equal(c.tunnel.keepAliveIntervalMs, 3000, 'env over file')
  tt.same(c.tunnel.edges, ['a:1', 'b:2'], 'comma lists')
  tt.equal(c.tunnel.listen, '127.0.0.1:1', 'file value kept where env is silent')
  const d = loadConfig(schema, {
    file: f,
    env,
    flags: { 'tunnel-keep-alive-interval-ms': '4000', 'tunnel-compress': true },
  })
  tt.equal(d.tunnel.keepAliveIntervalMs, 4000, 'flag over env')
  tt.equal(d.tunnel.compress, true)
})

t.test('bad values say where they came from, with exit code 78', async (tt) => {
  const cases: Array<[Parameters<typeof loadConfig>[1], RegExp]> = [
    [
      { env: { HOPGATE_TUNNEL_KEEP_ALIVE_INTERVAL_MS: 'soon' } },
      /HOPGATE_TUNNEL_KEEP_ALIVE_INTERVAL_MS: not a number/,
    ],
    [
      { env: { HOPGATE_TUNNEL_KEEP_ALIVE_INTERVAL_MS: '-5' } },
      /tunnel\.keepAliveIntervalMs \(env HOPGATE_TUNNEL_KEEP_ALIVE_INTERVAL_MS\)/,
    ],
    [{ flags: { 'log-level': 'loud' } }, /logLevel \(flag --log-level\)/],
    [{ env: { HOPGATE_TUNNEL_COMPRESS: 'maybe' } }, /not a boolean/],
    [{ file: file('v.yaml', 'tunnel: {}\n') }, /version must be 1/],
    [{ file: file('u.yaml', 'version: 1\ntunel: {}\n') }, /\(top\) \(file .*u\.yaml\)|tunel/],
    [{ file: file('y.yaml', 'version: 1\ntunnel: [\n') }, /y\.yaml:\d+:\d+/],
    [{ file: file('dup.yaml', 'version: 1\nlogLevel: info\nlogLevel: warn\n') }, /DUPLICATE_KEY/],
    [{ file: join(dir, 'missing.yaml') }, /cannot read/],
  ]
  for (const [sources, message] of cases) {
    let err: unknown
    try {
      loadConfig(schema, sources)
    } catch (e) {
      err = e
    }
    tt.match(err, { code: 'HOPGATE_ERR_CONFIG_INVALID', exitCode: 78, message }, String(message))
  }
})
