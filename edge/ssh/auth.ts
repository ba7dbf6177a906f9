// Who is logging in: a public key (account keys in the AccessStore) or an OpenSSH user
// certificate from a trusted CA (principal = account), checked against the username's project
// ACL (upstream mode) or its account (ProxyJump mode). The identity is the key whose signature
// verified: a query without a signature only says whether that key would be accepted.
// Owns no sockets and no counters: the server (server.ts) applies limits and logs refusals.
import { verify } from 'node:crypto'
import type { Clock } from '../../shared/clock.js'
import { HopgateError } from '../../shared/errors.js'
import type { AccessStore } from '../auth/access-store.js'
import { isAccountId } from '../auth/embedded-access.js'
import { isCertAlgo, parseCertificate, verifyCertificate, type SshCertificate } from './cert.js'
import type { SshUser } from './username.js'
import { fingerprint, parsePublicKeyBlob, verifySshSignature, type SshPublicKey } from './wire.js'

/** Bounds the ACL lookups a certificate with many principals can cause. */
const MAX_PRINCIPALS_CHECKED = 16

export interface PublicKeyAttempt {
  user: SshUser
  /** The algorithm the client named (a key type, `rsa-sha2-*` is reported by ssh2 as ssh-rsa). */
  algo: string
  keyBlob: Buffer
  /**
   * As ssh2 passes it: for plain keys the bare signature (ECDSA in DER), for certificates the
   * whole `string algo, string sig` blob. Absent for a query.
   */
  signature?: Buffer
  /** What the client signed (session id + request), present with `signature`. */
  signedData?: Buffer
  /** ssh2's hash for rsa-sha2-256/512; undefined for ssh-rsa (SHA-1, refused). */
  hashAlgo?: string
  clientIp: string
}

export interface Identity {
  account: string
  /** Fingerprint of the key that signed (the certified key for certificates). */
  fingerprint: string
  via: 'key' | 'cert'
  cert?: SshCertificate
}

export interface SshAuthOptions {
  access: AccessStore
  /** Fingerprints of trusted user-CA keys; empty means certificates are refused. */
  trustedCas: ReadonlySet<string>
  /** Wall clock (Unix ms) for certificate validity. */
  wallClock: Pick<Clock, 'now'>
}

export class SshAuthenticator {
  constructor(private readonly opts: SshAuthOptions) {}

  /** Resolves the identity, or throws a typed HOPGATE_ERR_SSH_* refusal. */
  async check(a: PublicKeyAttempt): Promise<Identity> {
    const identity = isCertAlgo(a.algo) ? await this.checkCert(a) : await this.checkKey(a)
    if (a.user.kind === 'project') {
      if (!(await this.opts.access.isCollaborator(a.user.project, identity.account))) {
        throw new HopgateError('HOPGATE_ERR_SSH_NO_ACCESS')
      }
    } else if (identity.account !== a.user.account) {
      throw new HopgateError('HOPGATE_ERR_SSH_NO_ACCESS', 'key belongs to another account')
    }
    return identity
  }

  private async checkKey(a: PublicKeyAttempt): Promise<Identity> {
    const pub = parsePublicKeyBlob(a.keyBlob)
    if (pub.type !== a.algo) throw new HopgateError('HOPGATE_ERR_SSH_MALFORMED', 'algorithm')
    const fp = fingerprint(pub.blob)
    const record = await this.opts.access.findSshKey(fp)
    if (!record) throw new HopgateError('HOPGATE_ERR_SSH_AUTH_FAILED', fp)
    if (a.signature && !verifyPlain(pub, a)) {
      throw new HopgateError('HOPGATE_ERR_SSH_AUTH_FAILED', 'bad signature')
    }
    return { account: record.account, fingerprint: fp, via: 'key' }
  }

  private async checkCert(a: PublicKeyAttempt): Promise<Identity> {
    if (this.opts.trustedCas.size === 0) {
      throw new HopgateError('HOPGATE_ERR_SSH_CERT_UNTRUSTED', 'no user CA configured')
    }
    const cert = parseCertificate(a.keyBlob)
    if (cert.certType !== a.algo) throw new HopgateError('HOPGATE_ERR_SSH_MALFORMED', 'algorithm')
    const account = await this.certAccount(cert, a.user)
    verifyCertificate(cert, {
      trustedCas: this.opts.trustedCas,
      account,
      nowMs: this.opts.wallClock.now(),
      clientIp: a.clientIp,
    })
    if (
      a.signature &&
      !verifySshSignature(cert.key, a.signature, a.signedData ?? Buffer.alloc(0))
    ) {
      throw new HopgateError('HOPGATE_ERR_SSH_AUTH_FAILED', 'bad signature')
    }
    return { account, fingerprint: fingerprint(cert.key.blob), via: 'cert', cert }
  }

  /** The principal to check: the account itself (ProxyJump), else one that collaborates. */
  private async certAccount(cert: SshCertificate, user: SshUser): Promise<string> {
    if (user.kind === 'account') return user.account
    for (const p of cert.principals.slice(0, MAX_PRINCIPALS_CHECKED)) {
      if (isAccountId(p) && (await this.opts.access.isCollaborator(user.project, p))) return p
    }
    // Still verify the certificate first so an untrusted or expired one says so in the log.
    const first = cert.principals.find(isAccountId) ?? ''
    verifyCertificate(cert, {
      trustedCas: this.opts.trustedCas,
      account: first,
      nowMs: this.opts.wallClock.now(),
      clientIp: '',
    })
    throw new HopgateError('HOPGATE_ERR_SSH_NO_ACCESS', 'no principal collaborates')
  }
}

/** ssh2 strips the algorithm from plain-key signatures and turns ECDSA ones into DER. */
function verifyPlain(pub: SshPublicKey, a: PublicKeyAttempt): boolean {
  const sig = a.signature!
  const data = a.signedData ?? Buffer.alloc(0)
  try {
    switch (pub.type) {
      case 'ssh-ed25519':
        return verify(null, data, pub.key, sig)
      case 'ssh-rsa':
        // No hash means the client asked for ssh-rsa (SHA-1): not a modern algorithm.
        return (
          (a.hashAlgo === 'sha256' || a.hashAlgo === 'sha512') &&
          verify(a.hashAlgo, data, pub.key, sig)
        )
      case 'ecdsa-sha2-nistp256':
        return verify('sha256', data, pub.key, sig)
      case 'ecdsa-sha2-nistp384':
        return verify('sha384', data, pub.key, sig)
      case 'ecdsa-sha2-nistp521':
        return verify('sha512', data, pub.key, sig)
    }
  } catch {
    return false
  }
}
