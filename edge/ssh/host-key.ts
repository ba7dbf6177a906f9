// The edge's two ed25519 SSH keys, persistent in `<stateDir>/ssh/`: the host key users' clients
// pin (`host_ed25519`) and the upstream key the edge logs into projects' sshd with
// (`upstream_ed25519`, whose public half `hopgate ssh upstream-key` prints). Created once, 0600,
// never replaced; a concurrent first start loses the race and reads the winner's key.
import { generateKeyPairSync, createPrivateKey, type KeyObject } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ensurePrivateDir, writeFileAtomic } from '../../certs/state.js'
import { HopgateError } from '../../shared/errors.js'
import { authorizedKeyLine, ed25519Blob, fingerprint, openSshPrivateKey } from './wire.js'

export const SSH_DIR = 'ssh'
export type EdgeKeyName = 'host_ed25519' | 'upstream_ed25519'

export interface EdgeSshKey {
  /** OpenSSH private key text, for ssh2's hostKeys / privateKey. */
  privateKey: string
  /** `ssh-ed25519 AAAA... comment` */
  publicLine: string
  fingerprint: string
}

/** Reads an unencrypted OpenSSH ed25519 private key (ours or ssh-keygen's). */
export function keyFromText(text: string): KeyObject {
  const b64 = text.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, '')
  const body = Buffer.from(b64, 'base64')
  // The private section ends with seed||pub (64 bytes) after the fixed header fields; find the
  // ed25519 string inside it: the last 'ssh-ed25519' name is followed by pub then seed||pub.
  const marker = Buffer.from('ssh-ed25519')
  const at = body.lastIndexOf(marker)
  if (at < 0) throw new HopgateError('HOPGATE_ERR_CONFIG_INVALID', 'not an ed25519 OpenSSH key')
  let p = at + marker.length
  const publen = body.readUInt32BE(p)
  p += 4 + publen
  const privlen = body.readUInt32BE(p)
  if (publen !== 32 || privlen !== 64) {
    throw new HopgateError('HOPGATE_ERR_CONFIG_INVALID', 'not an ed25519 OpenSSH key')
  }
  const seed = body.subarray(p + 4, p + 36)
  const pub = body.subarray(p + 36, p + 68)
  return createPrivateKey({
    key: {
      kty: 'OKP',
      crv: 'Ed25519',
      d: seed.toString('base64url'),
      x: pub.toString('base64url'),
    },
    format: 'jwk',
  })
}

function describe(key: KeyObject, text: string, comment: string): EdgeSshKey {
  return {
    privateKey: text,
    publicLine: authorizedKeyLine(key, comment),
    fingerprint: fingerprint(ed25519Blob(key)),
  }
}

/** Loads the key, creating it on first use. */
export async function loadEdgeKey(stateDir: string, name: EdgeKeyName): Promise<EdgeSshKey> {
  const dir = join(stateDir, SSH_DIR)
  const path = join(dir, name)
  const comment = `hopgate-${name.replace('_ed25519', '')}`
  try {
    const text = await readFile(path, 'utf8')
    return describe(keyFromText(text), text, comment)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  await ensurePrivateDir(dir)
  const { privateKey } = generateKeyPairSync('ed25519')
  const text = openSshPrivateKey(privateKey, comment)
  try {
    await writeFileAtomic(path, text, { mode: 0o600, overwrite: false })
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    const winner = await readFile(path, 'utf8')
    return describe(keyFromText(winner), winner, comment)
  }
  return describe(privateKey, text, comment)
}

/** A fresh ed25519 key pair in OpenSSH form (demo and tests: a user's key). */
export function newUserKey(comment: string): EdgeSshKey {
  const { privateKey } = generateKeyPairSync('ed25519')
  return describe(privateKey, openSshPrivateKey(privateKey, comment), comment)
}
