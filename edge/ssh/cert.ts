// OpenSSH user certificates (PROTOCOL.certkeys), parsed and verified here because ssh2 hands
// the raw certificate blob to the auth handler unchecked. Pure: no I/O, time comes in as a
// parameter. Verifies the CA signature against trusted CA keys, the certificate type (user),
// principals, the validity window and critical options; the user's own signature over the
// session is auth.ts's job, made with the key this module returns. Also signs ed25519 user
// certificates with an ed25519 CA (the demo's CA; tests), so verification has a second writer
// besides ssh-keygen.
import { isIP } from 'node:net'
import { randomBytes, sign, type KeyObject } from 'node:crypto'
import { HopgateError } from '../../shared/errors.js'
import {
  SshReader,
  ed25519Blob,
  fingerprint,
  parsePublicKeyBlob,
  readKeyFields,
  sshString,
  verifySshSignature,
  type KeyType,
  type SshPublicKey,
} from './wire.js'

const CERT_TYPES: Record<string, KeyType> = {
  'ssh-ed25519-cert-v01@openssh.com': 'ssh-ed25519',
  'ssh-rsa-cert-v01@openssh.com': 'ssh-rsa',
  'ecdsa-sha2-nistp256-cert-v01@openssh.com': 'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384-cert-v01@openssh.com': 'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521-cert-v01@openssh.com': 'ecdsa-sha2-nistp521',
}

export const SSH_CERT_TYPE_USER = 1

export function isCertAlgo(algo: string): boolean {
  return Object.hasOwn(CERT_TYPES, algo)
}

export interface SshCertificate {
  certType: string
  /** The certified key: the user's signature must verify with this. */
  key: SshPublicKey
  serial: bigint
  /** 1 user, 2 host. */
  type: number
  keyId: string
  principals: string[]
  /** Seconds since the epoch; validBefore 2^64-1 means forever. */
  validAfter: bigint
  validBefore: bigint
  criticalOptions: Map<string, Buffer>
  extensions: Set<string>
  caKey: SshPublicKey
  caFingerprint: string
  /** Bytes the CA signed, and its signature blob. */
  signed: Buffer
  signature: Buffer
}

function readOptions(blob: Buffer, what: string): Map<string, Buffer> {
  const r = new SshReader(blob)
  const out = new Map<string, Buffer>()
  let last = ''
  while (!r.done) {
    const name = r.text()
    const data = r.string()
    // The spec wants them sorted and unique; a duplicate could hide a second, stricter value.
    if (out.has(name) || name <= last) {
      throw new HopgateError('HOPGATE_ERR_SSH_MALFORMED', `${what} not sorted or duplicated`)
    }
    last = name
    out.set(name, data)
  }
  return out
}

/** Parses a certificate blob (what the client sends as its public key). Throws SSH_MALFORMED. */
export function parseCertificate(blob: Buffer): SshCertificate {
  const r = new SshReader(blob)
  const certType = r.text()
  const keyType = CERT_TYPES[certType]
  if (!keyType) throw new HopgateError('HOPGATE_ERR_SSH_UNSUPPORTED_KEY', certType.slice(0, 64))
  r.string() // nonce
  const { key, parts } = readKeyFields(keyType, r)
  const serial = r.uint64()
  const type = r.uint32()
  const keyId = r.string().toString('utf8')
  const pr = new SshReader(r.string())
  const principals: string[] = []
  while (!pr.done) principals.push(pr.string().toString('utf8'))
  const validAfter = r.uint64()
  const validBefore = r.uint64()
  const criticalOptions = readOptions(r.string(), 'critical options')
  const extensions = new Set(readOptions(r.string(), 'extensions').keys())
  r.string() // reserved
  const caBlob = r.string()
  const signedEnd = r.offset
  const signature = r.string()
  r.end()
  const caKey = parsePublicKeyBlob(caBlob)
  return {
    certType,
    key: { type: keyType, key, blob: Buffer.concat([sshString(keyType), ...parts]) },
    serial,
    type,
    keyId,
    principals,
    validAfter,
    validBefore,
    criticalOptions,
    extensions,
    caKey,
    caFingerprint: fingerprint(caBlob),
    signed: blob.subarray(0, signedEnd),
    signature,
  }
}

export interface CertCheck {
  /** Fingerprints (`SHA256:...`) of the trusted user CA keys. */
  trustedCas: ReadonlySet<string>
  /** The account the certificate must name among its principals. */
  account: string
  /** Wall-clock Unix ms. */
  nowMs: number
  /** The client's IP, for the source-address critical option. */
  clientIp: string
}

/** Critical options hopgate honours; any other one refuses the certificate (PROTOCOL.certkeys). */
const KNOWN_CRITICAL = new Set(['source-address'])

/**
 * Checks a parsed certificate; throws a typed HOPGATE_ERR_SSH_CERT_* error. The order matters:
 * trust first, so nothing else in an unsigned blob is believed.
 */
export function verifyCertificate(cert: SshCertificate, check: CertCheck): void {
  if (!check.trustedCas.has(cert.caFingerprint)) {
    throw new HopgateError('HOPGATE_ERR_SSH_CERT_UNTRUSTED', `CA ${cert.caFingerprint}`)
  }
  // A CA key that signs its own certificate is not a chain OpenSSH allows either.
  if (
    cert.caKey.blob.equals(cert.key.blob) ||
    !verifySshSignature(cert.caKey, cert.signature, cert.signed)
  ) {
    throw new HopgateError('HOPGATE_ERR_SSH_CERT_UNTRUSTED', 'bad CA signature')
  }
  if (cert.type !== SSH_CERT_TYPE_USER) {
    throw new HopgateError('HOPGATE_ERR_SSH_CERT_UNTRUSTED', 'not a user certificate')
  }
  const now = BigInt(Math.floor(check.nowMs / 1000))
  if (now < cert.validAfter || now >= cert.validBefore) {
    throw new HopgateError('HOPGATE_ERR_SSH_CERT_EXPIRED', `serial ${cert.serial}`)
  }
  // An empty principals list means "anyone" to OpenSSH; for an edge shared by tenants it must not.
  if (!cert.principals.includes(check.account)) {
    throw new HopgateError('HOPGATE_ERR_SSH_CERT_PRINCIPAL', `serial ${cert.serial}`)
  }
  for (const [name, data] of cert.criticalOptions) {
    if (!KNOWN_CRITICAL.has(name)) {
      throw new HopgateError(
        'HOPGATE_ERR_SSH_CERT_OPTION',
        `unsupported critical option ${name.slice(0, 64)}`,
      )
    }
    if (name === 'source-address') {
      const list = new SshReader(data).text()
      if (!list.split(',').some((cidr) => inCidr(check.clientIp, cidr.trim()))) {
        throw new HopgateError('HOPGATE_ERR_SSH_CERT_OPTION', 'source-address does not match')
      }
    }
  }
}

function ipBytes(ip: string): Buffer | undefined {
  const v4 = ip.startsWith('::ffff:') && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip
  if (isIP(v4) === 4) return Buffer.from(v4.split('.').map(Number))
  if (isIP(v4) !== 6) return undefined
  const [head, tail = ''] = v4.includes('::') ? v4.split('::') : [v4, undefined]
  const h = head ? head.split(':') : []
  const tl = tail === undefined ? [] : tail ? tail.split(':') : []
  const groups =
    tail === undefined ? h : [...h, ...Array(8 - h.length - tl.length).fill('0'), ...tl]
  if (groups.length !== 8) return undefined
  return Buffer.from(
    groups.flatMap((g) => {
      const n = parseInt(g, 16)
      return [n >> 8, n & 255]
    }),
  )
}

/** True if `ip` is in `cidr` (`a.b.c.d/n`, `v6/n` or a bare address); false for anything unparsable. */
export function inCidr(ip: string, cidr: string): boolean {
  const [base, bitsText] = cidr.split('/')
  const a = ipBytes(ip)
  const b = ipBytes(base ?? '')
  if (!a || !b || a.length !== b.length) return false
  const bits = bitsText === undefined ? a.length * 8 : Number(bitsText)
  if (!Number.isInteger(bits) || bits < 0 || bits > a.length * 8 || !/^\d*$/.test(bitsText ?? ''))
    return false
  for (let i = 0; i < a.length; i++) {
    const take = Math.max(0, Math.min(8, bits - i * 8))
    const mask = take === 0 ? 0 : (0xff << (8 - take)) & 0xff
    if ((a[i]! & mask) !== (b[i]! & mask)) return false
  }
  return true
}

/** Fingerprints of CA keys from authorized_keys-style lines (`ssh-ed25519 AAAA... comment`). */
export function trustedCaSet(lines: readonly string[]): Set<string> {
  const out = new Set<string>()
  for (const line of lines) {
    const t = line.trim()
    if (!t || t.startsWith('#')) continue
    const b64 = t.split(/\s+/)[1] ?? ''
    out.add(fingerprint(parsePublicKeyBlob(Buffer.from(b64, 'base64')).blob))
  }
  return out
}

/** OpenSSH's default extensions for user certificates (ssh-keygen -s), in the sorted order the format requires. */
export const DEFAULT_USER_EXTENSIONS = [
  'permit-X11-forwarding',
  'permit-agent-forwarding',
  'permit-port-forwarding',
  'permit-pty',
  'permit-user-rc',
] as const

export interface UserCertRequest {
  /** The CA's ed25519 private key. */
  caKey: KeyObject
  /** The certified key's public blob (ssh-ed25519 only). */
  keyBlob: Buffer
  keyId: string
  principals: readonly string[]
  /** Unix seconds. */
  validAfter: number
  validBefore: number
  serial?: bigint
  extensions?: readonly string[]
}

/** An ed25519 user certificate as an OpenSSH `-cert.pub` line (no critical options). */
export function signUserCertificate(req: UserCertRequest): string {
  const key = parsePublicKeyBlob(req.keyBlob)
  if (key.type !== 'ssh-ed25519') {
    throw new HopgateError('HOPGATE_ERR_SSH_UNSUPPORTED_KEY', 'only ed25519 keys are certified')
  }
  const u64 = (n: bigint): Buffer => {
    const b = Buffer.alloc(8)
    b.writeBigUInt64BE(n)
    return b
  }
  const u32 = (n: number): Buffer => {
    const b = Buffer.alloc(4)
    b.writeUInt32BE(n)
    return b
  }
  const certType = 'ssh-ed25519-cert-v01@openssh.com'
  const pub = new SshReader(req.keyBlob)
  pub.string() // key type
  const extensions = [...(req.extensions ?? DEFAULT_USER_EXTENSIONS)].sort()
  const signed = Buffer.concat([
    sshString(certType),
    sshString(randomBytes(32)),
    sshString(pub.string()),
    u64(req.serial ?? 0n),
    u32(SSH_CERT_TYPE_USER),
    sshString(req.keyId),
    sshString(Buffer.concat(req.principals.map((p) => sshString(p)))),
    u64(BigInt(req.validAfter)),
    u64(BigInt(req.validBefore)),
    sshString(''),
    sshString(Buffer.concat(extensions.flatMap((e) => [sshString(e), sshString('')]))),
    sshString(''),
    sshString(ed25519Blob(req.caKey)),
  ])
  const sig = Buffer.concat([sshString('ssh-ed25519'), sshString(sign(null, signed, req.caKey))])
  const blob = Buffer.concat([signed, sshString(sig)])
  return `${certType} ${blob.toString('base64')} ${req.keyId}`
}
