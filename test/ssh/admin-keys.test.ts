// The admin API's SSH key endpoints behind `hopgate ssh-key`: add (validated authorized_keys
// line, fingerprint computed by the edge), list, remove, and typed refusals for bad input.
import t from 'tap'
import { tempDir } from '../helpers/echo.js'
import { initCa } from '../../certs/pki.js'
import { startEdge } from '../../edge/edge.js'
import { newUserKey } from '../../edge/ssh/host-key.js'

t.test('ssh-key endpoints', async (tt) => {
  const dir = await tempDir(tt, 'edge')
  await initCa(dir, { edgeId: 'edge-1' })
  const edge = await startEdge({ stateDir: dir, tunnelPort: 0, adminPort: 0 })
  tt.teardown(() => edge.close())
  const base = `http://127.0.0.1:${edge.admin!.address.port}/v1/accounts`
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${base}${path}`, {
      method,
      ...(body === undefined
        ? {}
        : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
    })
    return { status: res.status, body: (await res.json()) as Record<string, any> }
  }
  const key = newUserKey('alice@laptop')
  const added = await call('POST', '/alice/ssh-keys', { key: key.publicLine })
  tt.equal(added.status, 200)
  tt.equal(added.body.key.fingerprint, key.fingerprint, 'the edge computes the OpenSSH fingerprint')
  tt.equal(added.body.key.comment, 'alice@laptop')
  tt.equal((await edge.access.findSshKey(key.fingerprint))?.account, 'alice', 'stored for alice')
  const list = await call('GET', '/alice/ssh-keys')
  tt.same(
    list.body.keys.map((k: { fingerprint: string }) => k.fingerprint),
    [key.fingerprint],
  )
  const taken = await call('POST', '/bob/ssh-keys', { key: key.publicLine })
  tt.same(
    [taken.status, taken.body.error.code],
    [409, 'HOPGATE_ERR_SSH_KEY_TAKEN'],
    'one key, one account',
  )
  const bad = await call('POST', '/alice/ssh-keys', { key: 'ssh-ed25519 AAAAnotakey' })
  tt.same([bad.status, bad.body.error.code], [400, 'HOPGATE_ERR_SSH_KEY_INVALID'])
  const priv = await call('POST', '/alice/ssh-keys', { key: key.privateKey })
  tt.equal(
    priv.body.error.code,
    'HOPGATE_ERR_SSH_KEY_INVALID',
    'a private key is not accepted as a key line',
  )
  const badAccount = await call('GET', '/Not%20An%20Account/ssh-keys')
  tt.same(
    [badAccount.status, badAccount.body.error.code],
    [400, 'HOPGATE_ERR_ACCESS_ACCOUNT_INVALID'],
  )
  const wrongOwner = await call('DELETE', `/bob/ssh-keys/${encodeURIComponent(key.fingerprint)}`)
  tt.equal(wrongOwner.status, 404, "bob cannot remove alice's key")
  const removed = await call('DELETE', `/alice/ssh-keys/${encodeURIComponent(key.fingerprint)}`)
  tt.same([removed.status, removed.body.removed], [200, true])
  tt.equal(await edge.access.findSshKey(key.fingerprint), undefined, 'gone')
})
