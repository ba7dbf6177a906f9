// User tokens: EdDSA (Ed25519) signed, short-lived bearer tokens naming an account, minted by
// `hopgate token user` and checked by the HTTP ingress. Owns the signing key file
// (`<stateDir>/user-token.key`, PKCS#8 PEM, 0600, created once). Does not decide access: a valid
// token says who, the ACL (access-cache.ts) says whether. Format: docs/PROTOCOL.md "User tokens".
//   hgu1.<base64url(JSON {v:1, sub, iat, exp, jti})>.<base64url(Ed25519 over "hgu1.<payload>")>
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes } from 'node:crypto'
import { sign, verify, type KeyObject } from 'node:crypto'
import { open, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { z } from 'zod'
import { HopgateError } from '../../shared/errors.js'
import { ensurePrivateDir } from '../../certs/state.js'
import { isAccountId } from './embedded-access.js'
import type { AccountId } from './access-store.js'

export const USER_TOKEN_PREFIX = 'hgu1'
export const USER_TOKEN_KEY_FILE = 'user-token.key'
/** @default 1 hour */
export const DEFAULT_USER_TOKEN_TTL_MS = 3_600_000
/** Longest lifetime `mint` accepts: 7 days. */
export const MAX_USER_TOKEN_TTL_MS = 7 * 86_400_000
/** Longest token string `verify` looks at; anything longer is refused before any parsing. */
export const MAX_USER_TOKEN_CHARS = 1024
/** How far in the future `iat` may be (clock skew between minting host and edge), in ms. */
const SKEW_MS = 60_000

const TOKEN_RE = /^hgu1\.([A-Za-z0-9_-]{1,800})\.([A-Za-z0-9_-]{86})$/

const claimsSchema = z
  .object({
    v: z.literal(1),
    sub: z.string().refine(isAccountId),
    /** Unix seconds. */
    iat: z.number().int().nonnegative(),
    exp: z.number().int().positive(),
    jti: z.string().regex(/^[A-Za-z0-9_-]{16,32}$/),
  })
  .strict()

export type UserTokenClaims = z.output<typeof claimsSchema>

export interface MintOptions {
  account: AccountId
  /** @default DEFAULT_USER_TOKEN_TTL_MS; at most MAX_USER_TOKEN_TTL_MS. */
  ttlMs?: number
  /** Wall-clock Unix ms. @default Date.now() */
  now?: number
}

export class UserTokens {
  private constructor(
    private readonly privateKey: KeyObject,
    private readonly publicKey: KeyObject,
  ) {}

  /** Loads the edge's signing key, creating it (0600) the first time. */
  static async open(stateDir: string): Promise<UserTokens> {
    await ensurePrivateDir(stateDir)
    const path = join(stateDir, USER_TOKEN_KEY_FILE)
    let pem: string
    try {
      pem = await readFile(path, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw keyError(path, err)
      pem = await createKeyFile(path)
    }
    try {
      const privateKey = createPrivateKey(pem)
      if (privateKey.asymmetricKeyType !== 'ed25519') throw new Error('not an Ed25519 key')
      return new UserTokens(privateKey, createPublicKey(privateKey))
    } catch (err) {
      throw keyError(path, err)
    }
  }

  mint(opts: MintOptions): { token: string; claims: UserTokenClaims } {
    if (!isAccountId(opts.account)) {
      throw new HopgateError('HOPGATE_ERR_ACCESS_ACCOUNT_INVALID', JSON.stringify(opts.account))
    }
    const ttlMs = opts.ttlMs ?? DEFAULT_USER_TOKEN_TTL_MS
    if (!Number.isSafeInteger(ttlMs) || ttlMs < 1000 || ttlMs > MAX_USER_TOKEN_TTL_MS) {
      throw new HopgateError('HOPGATE_ERR_CONFIG_INVALID', `token ttl ${ttlMs} ms: 1 s to 7 days`)
    }
    const nowS = Math.floor((opts.now ?? Date.now()) / 1000)
    const claims: UserTokenClaims = {
      v: 1,
      sub: opts.account,
      iat: nowS,
      exp: nowS + Math.ceil(ttlMs / 1000),
      jti: randomBytes(16).toString('base64url'),
    }
    const signed = `${USER_TOKEN_PREFIX}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`
    const sig = sign(null, Buffer.from(signed), this.privateKey).toString('base64url')
    return { token: `${signed}.${sig}`, claims }
  }

  /** The claims of a valid token at `nowMs`, or a typed 401 error; never throws anything else. */
  verify(token: string, nowMs: number): UserTokenClaims {
    const m = token.length <= MAX_USER_TOKEN_CHARS ? TOKEN_RE.exec(token) : null
    if (!m) throw new HopgateError('HOPGATE_ERR_TOKEN_MALFORMED')
    const signed = token.slice(0, token.length - m[2]!.length - 1)
    // The signature is checked before the payload is even decoded: nothing unsigned is parsed.
    if (!verify(null, Buffer.from(signed), this.publicKey, Buffer.from(m[2]!, 'base64url'))) {
      throw new HopgateError('HOPGATE_ERR_TOKEN_BAD_SIGNATURE')
    }
    let claims: UserTokenClaims
    try {
      claims = claimsSchema.parse(JSON.parse(Buffer.from(m[1]!, 'base64url').toString('utf8')))
    } catch {
      throw new HopgateError('HOPGATE_ERR_TOKEN_MALFORMED', 'payload')
    }
    if (claims.exp * 1000 <= nowMs || claims.iat * 1000 > nowMs + SKEW_MS) {
      throw new HopgateError('HOPGATE_ERR_TOKEN_EXPIRED')
    }
    return claims
  }
}

async function createKeyFile(path: string): Promise<string> {
  const { privateKey } = generateKeyPairSync('ed25519')
  const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString()
  try {
    // 'wx': if the edge and `hopgate token user` race on first use, one key wins and both read it.
    const fh = await open(path, 'wx', 0o600)
    try {
      await fh.writeFile(pem)
      await fh.sync()
    } finally {
      await fh.close()
    }
    return pem
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return readFile(path, 'utf8')
    throw keyError(path, err)
  }
}

function keyError(path: string, cause: unknown): HopgateError {
  return new HopgateError('HOPGATE_ERR_TOKEN_KEY_INVALID', path, { cause })
}
