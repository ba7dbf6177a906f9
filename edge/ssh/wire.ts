// SSH wire primitives the edge needs outside ssh2: a bounds-checked reader for RFC 4251 types,
// public key blobs to Node KeyObjects, signature checks, fingerprints, and the OpenSSH private
// key text form for ed25519 (host, upstream and demo keys). Owns no policy: which keys are
// trusted is auth.ts's and cert.ts's business.
import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto'
import { HopgateError } from '../../shared/errors.js'

/** Any one field larger than this is hostile; real keys and certificates are a few KiB. */
const MAX_FIELD_BYTES = 16 * 1024

export class SshReader {
  private pos = 0
  constructor(private readonly buf: Buffer) {}

  get offset(): number {
    return this.pos
  }

  get done(): boolean {
    return this.pos === this.buf.length
  }

  private need(n: number): void {
    if (n < 0 || this.pos + n > this.buf.length) {
      throw new HopgateError('HOPGATE_ERR_SSH_MALFORMED', 'truncated SSH field')
    }
  }

  uint32(): number {
    this.need(4)
    const v = this.buf.readUInt32BE(this.pos)
    this.pos += 4
    return v
  }

  uint64(): bigint {
    this.need(8)
    const v = this.buf.readBigUInt64BE(this.pos)
    this.pos += 8
    return v
  }

  string(): Buffer {
    const len = this.uint32()
    if (len > MAX_FIELD_BYTES)
      throw new HopgateError('HOPGATE_ERR_SSH_MALFORMED', 'field too large')
    this.need(len)
    const v = this.buf.subarray(this.pos, this.pos + len)
    this.pos += len
    return v
  }

  /** A string that must be printable ASCII (names, principals, option names). */
  text(): string {
    const b = this.string()
    for (const c of b) {
      if (c < 0x20 || c > 0x7e)
        throw new HopgateError('HOPGATE_ERR_SSH_MALFORMED', 'non-ASCII name')
    }
    return b.toString('latin1')
  }

  end(): void {
    if (!this.done) throw new HopgateError('HOPGATE_ERR_SSH_MALFORMED', 'trailing bytes')
  }
}

export function sshString(data: Buffer | string): Buffer {
  const b = typeof data === 'string' ? Buffer.from(data, 'utf8') : data
  const len = Buffer.alloc(4)
  len.writeUInt32BE(b.length)
  return Buffer.concat([len, b])
}

function uint32(n: number): Buffer {
  const b = Buffer.alloc(4)
  b.writeUInt32BE(n)
  return b
}

/** OpenSSH fingerprint: `SHA256:` and unpadded base64 of the key blob's SHA-256. */
export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`
}

const b64url = (b: Buffer): string => b.toString('base64url')
/** mpint to unsigned big-endian bytes (drops the sign byte). */
const unsigned = (b: Buffer): Buffer => {
  let i = 0
  while (i < b.length - 1 && b[i] === 0) i++
  return b.subarray(i)
}

const CURVES = {
  'ecdsa-sha2-nistp256': { crv: 'P-256', name: 'nistp256', size: 32, hash: 'sha256' },
  'ecdsa-sha2-nistp384': { crv: 'P-384', name: 'nistp384', size: 48, hash: 'sha384' },
  'ecdsa-sha2-nistp521': { crv: 'P-521', name: 'nistp521', size: 66, hash: 'sha512' },
} as const
type EcType = keyof typeof CURVES

/** Key types hopgate accepts from users and CAs (no DSA, no ssh-rsa SHA-1 signatures). */
export type KeyType = 'ssh-ed25519' | 'ssh-rsa' | EcType

export interface SshPublicKey {
  type: KeyType
  /** The wire blob (what fingerprints and authorized_keys lines are made of). */
  blob: Buffer
  key: KeyObject
}

/** Reads the key fields that follow the type name (shared by plain keys and certificates). */
export function readKeyFields(type: string, r: SshReader): { key: KeyObject; parts: Buffer[] } {
  try {
    if (type === 'ssh-ed25519') {
      const pk = r.string()
      if (pk.length !== 32) throw new HopgateError('HOPGATE_ERR_SSH_MALFORMED', 'ed25519 key size')
      return {
        key: createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: b64url(pk) }, format: 'jwk' }),
        parts: [sshString(pk)],
      }
    }
    if (type === 'ssh-rsa') {
      const e = r.string()
      const n = r.string()
      const key = createPublicKey({
        key: { kty: 'RSA', n: b64url(unsigned(n)), e: b64url(unsigned(e)) },
        format: 'jwk',
      })
      if ((key.asymmetricKeyDetails?.modulusLength ?? 0) < 2048) {
        throw new HopgateError('HOPGATE_ERR_SSH_UNSUPPORTED_KEY', 'RSA key under 2048 bits')
      }
      return { key, parts: [sshString(e), sshString(n)] }
    }
    if (type in CURVES) {
      const c = CURVES[type as EcType]
      const curve = r.text()
      const q = r.string()
      if (curve !== c.name || q.length !== 1 + 2 * c.size || q[0] !== 4) {
        throw new HopgateError('HOPGATE_ERR_SSH_MALFORMED', 'ecdsa point')
      }
      const key = createPublicKey({
        key: {
          kty: 'EC',
          crv: c.crv,
          x: b64url(q.subarray(1, 1 + c.size)),
          y: b64url(q.subarray(1 + c.size)),
        },
        format: 'jwk',
      })
      return { key, parts: [sshString(curve), sshString(q)] }
    }
  } catch (err) {
    if (err instanceof HopgateError) throw err
    // Node rejects points off the curve and the like: the bytes are bad, not the edge.
    throw new HopgateError('HOPGATE_ERR_SSH_MALFORMED', 'key does not load')
  }
  throw new HopgateError('HOPGATE_ERR_SSH_UNSUPPORTED_KEY', type.slice(0, 64))
}

/** Parses a plain public key blob (`string type, key fields`), exactly, nothing trailing. */
export function parsePublicKeyBlob(blob: Buffer): SshPublicKey {
  const r = new SshReader(blob)
  const type = r.text()
  const { key } = readKeyFields(type, r)
  r.end()
  return { type: type as KeyType, blob, key }
}

/** Parses `type base64 [comment]` (an authorized_keys line without options). */
export function parseAuthorizedKey(line: string): SshPublicKey & { comment: string } {
  const m = /^\s*([a-z0-9@.-]+)\s+([A-Za-z0-9+/]+={0,2})(?:\s+(.*?))?\s*$/.exec(line)
  if (!m) throw new HopgateError('HOPGATE_ERR_SSH_KEY_INVALID', 'not "type base64 [comment]"')
  let parsed: SshPublicKey
  try {
    parsed = parsePublicKeyBlob(Buffer.from(m[2]!, 'base64'))
  } catch {
    throw new HopgateError('HOPGATE_ERR_SSH_KEY_INVALID', 'key blob does not parse')
  }
  if (parsed.type !== m[1]) throw new HopgateError('HOPGATE_ERR_SSH_KEY_INVALID', 'type mismatch')
  return { ...parsed, comment: (m[3] ?? '').slice(0, 256) }
}

/**
 * Verifies an SSH signature blob (`string algo, string sig`) over `data` with `pub`. Only modern
 * algorithms: ssh-ed25519, rsa-sha2-256/512, ecdsa-sha2-*. False for any mismatch or bad bytes.
 */
export function verifySshSignature(pub: SshPublicKey, sigBlob: Buffer, data: Buffer): boolean {
  try {
    const r = new SshReader(sigBlob)
    const algo = r.text()
    const sig = r.string()
    r.end()
    return verifyRaw(pub, algo, sig, data)
  } catch {
    return false
  }
}

/** As verifySshSignature, with the algorithm and raw signature already split. */
export function verifyRaw(pub: SshPublicKey, algo: string, sig: Buffer, data: Buffer): boolean {
  try {
    if (pub.type === 'ssh-ed25519') {
      return algo === 'ssh-ed25519' && verify(null, data, pub.key, sig)
    }
    if (pub.type === 'ssh-rsa') {
      const hash = algo === 'rsa-sha2-256' ? 'sha256' : algo === 'rsa-sha2-512' ? 'sha512' : null
      return hash !== null && verify(hash, data, pub.key, sig)
    }
    const c = CURVES[pub.type]
    if (algo !== pub.type) return false
    const r = new SshReader(sig)
    const rr = unsigned(r.string())
    const ss = unsigned(r.string())
    r.end()
    if (rr.length > c.size || ss.length > c.size) return false
    const p1363 = Buffer.alloc(2 * c.size)
    rr.copy(p1363, c.size - rr.length)
    ss.copy(p1363, 2 * c.size - ss.length)
    return verify(c.hash, data, { key: pub.key, dsaEncoding: 'ieee-p1363' }, p1363)
  } catch {
    return false
  }
}

/** The ed25519 public key blob of a Node key (private or public). */
export function ed25519Blob(key: KeyObject): Buffer {
  const jwk = key.export({ format: 'jwk' })
  if (jwk.crv !== 'Ed25519' || !jwk.x) throw new TypeError('not an ed25519 key')
  return Buffer.concat([sshString('ssh-ed25519'), sshString(Buffer.from(jwk.x, 'base64url'))])
}

export function authorizedKeyLine(key: KeyObject, comment: string): string {
  return `ssh-ed25519 ${ed25519Blob(key).toString('base64')} ${comment}`.trimEnd()
}

/** The `openssh-key-v1` text form (unencrypted) of an ed25519 private key: what ssh -i and ssh2 read. */
export function openSshPrivateKey(priv: KeyObject, comment: string): string {
  const jwk = priv.export({ format: 'jwk' })
  if (jwk.crv !== 'Ed25519' || !jwk.d || !jwk.x) throw new TypeError('not an ed25519 private key')
  const pub = Buffer.from(jwk.x, 'base64url')
  const seed = Buffer.from(jwk.d, 'base64url')
  const blob = ed25519Blob(priv)
  const check = uint32(Math.floor(Math.random() * 0xffffffff))
  let section = Buffer.concat([
    check,
    check,
    sshString('ssh-ed25519'),
    sshString(pub),
    sshString(Buffer.concat([seed, pub])),
    sshString(comment),
  ])
  const pad: number[] = []
  for (let i = 1; (section.length + pad.length) % 8 !== 0; i++) pad.push(i)
  section = Buffer.concat([section, Buffer.from(pad)])
  const body = Buffer.concat([
    Buffer.from('openssh-key-v1\0', 'latin1'),
    sshString('none'),
    sshString('none'),
    sshString(''),
    uint32(1),
    sshString(blob),
    sshString(section),
  ])
  const b64 = body.toString('base64').replace(/(.{70})/g, '$1\n')
  return `-----BEGIN OPENSSH PRIVATE KEY-----\n${b64.trimEnd()}\n-----END OPENSSH PRIVATE KEY-----\n`
}
