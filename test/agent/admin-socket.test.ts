// The agent's admin socket against hostile and broken input, in process over a real unix
// socket: each bad line gets a typed answer, the registry is untouched, an oversized line is
// cut off, and the socket keeps serving the next client.
import t from 'tap'
import net from 'node:net'
import { once } from 'node:events'
import { join } from 'node:path'
import {
  startAdminSocket,
  callAdminSocket,
  MAX_ADMIN_LINE_BYTES,
} from '../../agent/admin-socket.js'
import { projectAdmin } from '../../agent/projects.js'
import { TargetRegistry } from '../../agent/registry.js'
import { EpochTable } from '../../agent/streams.js'
import { tempDir } from '../helpers/echo.js'

const P = '0f8fad5b-d9cb-469f-a165-70867728950e'

async function rawLines(path: string, text: string): Promise<string[]> {
  const socket = net.connect(path)
  let got = ''
  socket.setEncoding('utf8')
  socket.on('data', (c: string) => (got += c))
  socket.on('error', () => {})
  socket.end(text)
  await once(socket, 'close')
  return got.split('\n').filter(Boolean)
}

t.test('bad requests get typed answers; the registry and the socket survive', async (tt) => {
  const dir = await tempDir(tt, 'admin')
  const registry = new TargetRegistry()
  const changes: string[] = []
  const sock = await startAdminSocket(
    join(dir, 'a.sock'),
    projectAdmin({
      registry,
      epochs: new EpochTable(),
      controls: () => [],
      onChange: (d) => changes.push(`${d.op} ${d.project}`),
    }),
  )
  tt.teardown(() => sock.close())
  const answers = (
    await rawLines(
      sock.path,
      [
        'not json',
        '{"op":"reboot"}',
        '{"op":"list","extra":1}',
        `{"op":"add","project":"${P}","targets":{"host":"127.0.0.1","allowedPorts":[70000]}}`,
        `{"op":"add","project":"${P.toUpperCase()}","targets":{"host":"127.0.0.1"}}`,
        `{"op":"remove","project":"../etc"}`,
        '{"op":"list"}',
      ].join('\n') + '\n',
    )
  ).map((l) => JSON.parse(l) as { ok: boolean; error?: { code: string } })
  tt.same(
    answers.map((a) => (a.ok ? 'ok' : a.error!.code)),
    [
      'HOPGATE_ERR_AGENT_ADMIN_BAD_REQUEST',
      'HOPGATE_ERR_AGENT_ADMIN_BAD_REQUEST',
      'HOPGATE_ERR_AGENT_ADMIN_BAD_REQUEST',
      'HOPGATE_ERR_CONFIG_INVALID',
      'HOPGATE_ERR_CONFIG_INVALID',
      'HOPGATE_ERR_CONFIG_INVALID',
      'ok',
    ],
    'one typed answer per line, in order',
  )
  tt.equal(registry.size, 0, 'nothing was added')
  tt.same(changes, [], 'and nothing announced')

  const long = await rawLines(sock.path, 'x'.repeat(MAX_ADMIN_LINE_BYTES + 10))
  tt.match(long[0], /line too long/, 'an oversized line is cut off with a typed answer')

  await callAdminSocket(sock.path, {
    op: 'add',
    project: P,
    targets: { host: '127.0.0.1', sshPort: 22 },
  })
  tt.ok(registry.has(P), 'a good request still works afterwards')
  tt.same(changes, [`add ${P}`])
  await tt.rejects(callAdminSocket(join(dir, 'none.sock'), { op: 'list' }), {
    code: 'HOPGATE_ERR_AGENT_ADMIN_UNREACHABLE',
  })
})
