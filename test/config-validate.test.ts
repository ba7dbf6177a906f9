// `hopgate config validate <file>`: the edge and agent schemas and their extra checks (addresses,
// mappings, projects) applied to a file without starting anything; one line per bad field; exit
// 0 when valid, 78 when not. In-process for the cases, the real CLI for the exit codes.
import t from 'tap'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { validateConfigFile } from '../shared/cli/commands/config.js'
import { tempDir } from './helpers/echo.js'
import { runHopgate } from './helpers/cli.js'

const P = '0f8fad5b-d9cb-469f-a165-70867728950e'

t.test('edge and agent files: valid ones pass, each bad field is named', async (tt) => {
  const dir = await tempDir(tt, 'config')
  const file = async (name: string, text: string): Promise<string> => {
    const path = join(dir, name)
    await writeFile(path, text)
    return path
  }
  const edgeOk = await file(
    'edge.yaml',
    `version: 1\nstateDir: /tmp/e\ntunnel:\n  listen: 0.0.0.0:7443\ntcp:\n  - 127.0.0.1:9000=${P}:22\n`,
  )
  tt.same(validateConfigFile(edgeOk), { file: edgeOk, kind: 'edge', ok: true, problems: [] })

  const agentOk = await file(
    'agent.yaml',
    `version: 1\nedges: [edge.example:7443]\nprojects:\n  ${P}:\n    host: 127.0.0.1\n    allowedPorts: [8000, "9000-9010"]\n`,
  )
  tt.equal(validateConfigFile(agentOk).kind, 'agent', 'kind guessed from the keys')
  tt.ok(validateConfigFile(agentOk).ok, 'valid agent config')

  const edgeBad = await file(
    'edge-bad.yaml',
    'version: 1\ntunnel:\n  listen: nowhere\nheartbeatIntervalMs: 5\ntcp: [junk]\nbogus: 1\n',
  )
  const v = validateConfigFile(edgeBad)
  tt.equal(v.ok, false)
  tt.equal(v.kind, 'edge')
  tt.match(v.problems.join('\n'), /heartbeatIntervalMs: /, 'the out-of-range number')
  tt.match(v.problems.join('\n'), /bogus|Unrecognized key/, 'the unknown key')

  const guardsOk = await file(
    'edge-guards.yaml',
    'version: 1\nstateDir: /tmp/e\nssh:\n  listen: 127.0.0.1:2222\n  upstreamGuards:\n    stalledWindowMs: 2000\n',
  )
  tt.ok(
    validateConfigFile(guardsOk, 'edge').ok,
    'ssh.upstreamGuards with one field set (the rest default)',
  )
  const guardsBad = await file(
    'edge-guards-bad.yaml',
    'version: 1\nstateDir: /tmp/e\nssh:\n  upstreamGuards:\n    maxUnsolicitedPerSecond: 0\n    burst: 3\n',
  )
  const g = validateConfigFile(guardsBad, 'edge')
  tt.equal(g.ok, false, 'bad upstream guards refused')
  tt.match(
    g.problems.join('\n'),
    /ssh\.upstreamGuards\.maxUnsolicitedPerSecond/,
    'the out-of-range guard is named by its path',
  )
  tt.match(g.problems.join('\n'), /burst|Unrecognized key/, 'an unknown guard key is named')
  const replyOk = await file(
    'edge-reply.yaml',
    'version: 1\nstateDir: /tmp/e\nssh:\n  upstreamGuards:\n    requestReplyTimeoutMs: 1000\n    maxChannelRequestsPerSecond: 10000\n',
  )
  tt.ok(
    validateConfigFile(replyOk, 'edge').ok,
    'reply deadline and channel-request rate at their edges',
  )
  const replyBad = await file(
    'edge-reply-bad.yaml',
    'version: 1\nstateDir: /tmp/e\nssh:\n  upstreamGuards:\n    requestReplyTimeoutMs: 999\n    maxChannelRequestsPerSecond: 0\n',
  )
  const rb = validateConfigFile(replyBad, 'edge')
  tt.equal(rb.ok, false, 'out-of-range reply deadline and channel-request rate refused')
  tt.match(rb.problems.join('\n'), /ssh\.upstreamGuards\.requestReplyTimeoutMs/, 'under 1 s')
  tt.match(rb.problems.join('\n'), /ssh\.upstreamGuards\.maxChannelRequestsPerSecond/, 'under 1/s')

  const edgeAddr = await file(
    'edge-addr.yaml',
    'version: 1\ntunnel:\n  listen: nowhere\ntcp: [junk]\n',
  )
  tt.same(
    validateConfigFile(edgeAddr).problems,
    ['tunnel.listen: want host:port', 'tcp.0: want <listen host:port>=<project>:<port>'],
    'one line per bad address or mapping',
  )

  const agentBad = await file(
    'agent-bad.yaml',
    `version: 1\nedges: [nohost]\nslots: 99\nprojects:\n  NOT-A-UUID:\n    host: x\n`,
  )
  const a = validateConfigFile(agentBad, 'agent')
  tt.equal(a.ok, false)
  tt.match(a.problems.join('\n'), /slots: /, 'slots out of range')

  const agentSem = await file(
    'agent-sem.yaml',
    `version: 1\nedges: [nohost]\nprojects:\n  NOT-A-UUID:\n    host: x\n`,
  )
  const s = validateConfigFile(agentSem, 'agent')
  tt.equal(s.problems.length, 2, 'both problems reported, not just the first')
  tt.match(s.problems[0], /^projects\.NOT-A-UUID/, 'the bad project key')
  tt.match(s.problems[1], /^edges\.0: want host:port/, 'the bad edge address')

  const version = await file('v2.yaml', 'version: 2\nedges: [a:1]\n')
  tt.match(validateConfigFile(version).problems[0], /^version: must be 1/)
  const yamlBad = await file('broken.yaml', 'version: 1\nedges: [a:1\n')
  tt.match(validateConfigFile(yamlBad).problems[0], /YAML/)
  tt.match(validateConfigFile(join(dir, 'missing.yaml')).problems[0], /cannot read: ENOENT/)
  const neither = await file('neither.yaml', 'version: 1\nstateDir: /x\n')
  tt.match(validateConfigFile(neither).problems.at(-1), /give --for/, 'ambiguous kind')

  const ok = await runHopgate(['config', 'validate', edgeOk])
  tt.equal(ok.code, 0, 'exit 0 for a valid file')
  tt.match(ok.stdout, /valid edge config/)
  const bad = await runHopgate(['config', 'validate', agentSem])
  tt.equal(bad.code, 78, 'exit 78 for an invalid one')
  tt.match(bad.stderr, /projects\.NOT-A-UUID/)
  tt.match(bad.stderr, /edges\.0: want host:port/)
  tt.match(bad.stderr, /2 problems \[HOPGATE_ERR_CONFIG_INVALID\]/)
})
