// Who is asking, and may they use this project: hopgate credentials on an HTTP request
// (`Authorization: Bearer hgu1...`, else the `hopgate_session` cookie), the one-time
// `?hopgate_token=` link that becomes that cookie, and the collaborator check through the access
// cache. 401 without valid credentials, 403 for a valid account that is not a collaborator.
// Token crypto is in ../auth/user-tokens.ts; header stripping in headers.ts.
import type { IncomingHttpHeaders } from 'node:http'
import { HopgateError } from '../../shared/errors.js'
import type { AccessCache } from '../auth/access-cache.js'
import type { UserTokenClaims, UserTokens } from '../auth/user-tokens.js'

export const SESSION_COOKIE = 'hopgate_session'
/** Verified tokens remembered (oldest dropped first). */
const VERIFIED_CACHE_ENTRIES = 10_000

// Only bearer tokens in hopgate's own format are ours; any other Authorization (Jupyter's
// `token ...`, Basic for the project's app) is the project's business and passes through.
const HOPGATE_BEARER_RE = /^[Bb]earer +(hgu1\.[A-Za-z0-9._-]+)\s*$/

export function isHopgateBearer(value: string): boolean {
  return HOPGATE_BEARER_RE.test(value)
}

export interface AuthenticatorOptions {
  tokens: UserTokens
  access: AccessCache
  /** Wall-clock Unix ms (token expiry). @default Date.now */
  now?: () => number
  /** Add `Secure` to the cookie (the listener is TLS). */
  secureCookies: boolean
  /** One-time link ids remembered until their token expires. @default 100000 */
  maxUsedLinks?: number
}

export class Authenticator {
  private readonly now: () => number
  private readonly usedLinks = new Map<string, number>()
  // Verified tokens by their exact string: an Ed25519 verify per request is the largest CPU cost
  // on the hot path, and a token's claims cannot change. Expiry is still checked on every use.
  private readonly verified = new Map<string, UserTokenClaims>()

  constructor(private readonly opts: AuthenticatorOptions) {
    this.now = opts.now ?? Date.now
  }

  /** The account of the request's credentials, or a typed 401. */
  authenticate(headers: IncomingHttpHeaders): UserTokenClaims {
    const authz = headers.authorization
    const bearer = authz === undefined ? null : HOPGATE_BEARER_RE.exec(authz)
    if (bearer) return this.verify(bearer[1]!)
    const cookies = sessionCookies(headers.cookie)
    if (cookies.length === 0) throw new HopgateError('HOPGATE_ERR_HTTP_UNAUTHENTICATED')
    let first: unknown
    // Browsers send every matching cookie of that name; the first that verifies wins.
    for (const value of cookies) {
      try {
        return this.verify(value)
      } catch (err) {
        first ??= err
      }
    }
    throw first
  }

  /** The account, if it may use `project`; else 401 or 403. */
  async authorize(headers: IncomingHttpHeaders, project: string): Promise<string> {
    const { sub } = this.authenticate(headers)
    if (!(await this.opts.access.isAllowed(project, sub))) {
      throw new HopgateError('HOPGATE_ERR_HTTP_FORBIDDEN')
    }
    return sub
  }

  /**
   * A `?hopgate_token=` link: verifies the token and uses it up, returning the Set-Cookie value
   * for the redirect (or null when a replayed link comes with a valid cookie of the same account,
   * i.e. the same browser opening the link again).
   */
  redeemLink(token: string, projectPrefix: string, headers: IncomingHttpHeaders): string | null {
    const claims = this.opts.tokens.verify(token, this.now())
    const nowMs = this.now()
    if (this.usedLinks.has(claims.jti)) {
      let have: UserTokenClaims | undefined
      try {
        have = this.authenticate(headers)
      } catch {
        // no usable cookie: the replay is refused below
      }
      if (have?.sub === claims.sub) return null
      throw new HopgateError('HOPGATE_ERR_TOKEN_REPLAYED')
    }
    this.remember(claims.jti, claims.exp * 1000, nowMs)
    const maxAge = Math.max(1, Math.floor((claims.exp * 1000 - nowMs) / 1000))
    return (
      `${SESSION_COOKIE}=${token}; Path=${projectPrefix}; Max-Age=${maxAge}; HttpOnly; ` +
      `SameSite=Lax${this.opts.secureCookies ? '; Secure' : ''}`
    )
  }

  private verify(token: string): UserTokenClaims {
    const nowMs = this.now()
    const hit = this.verified.get(token)
    if (hit && hit.exp * 1000 > nowMs) return hit
    const claims = this.opts.tokens.verify(token, nowMs)
    if (this.verified.size >= VERIFIED_CACHE_ENTRIES) {
      this.verified.delete(this.verified.keys().next().value!)
    }
    this.verified.set(token, claims)
    return claims
  }

  private remember(jti: string, expMs: number, nowMs: number): void {
    const max = this.opts.maxUsedLinks ?? 100_000
    if (this.usedLinks.size >= max) {
      for (const [k, exp] of this.usedLinks) if (exp <= nowMs) this.usedLinks.delete(k)
      // Still full of live links: forget the oldest (a replay of it then needs its cookie anyway).
      if (this.usedLinks.size >= max) {
        this.usedLinks.delete(this.usedLinks.keys().next().value!)
      }
    }
    this.usedLinks.set(jti, expMs)
  }
}

function sessionCookies(cookie: string | undefined): string[] {
  if (!cookie) return []
  const out: string[] = []
  for (const part of cookie.split(';')) {
    const eq = part.indexOf('=')
    if (eq < 0 || part.slice(0, eq).trim() !== SESSION_COOKIE) continue
    out.push(part.slice(eq + 1).trim())
  }
  return out
}
