// Join tokens: single-use, expiring secrets that let one runner enroll, each pinning the edge CA
// the agent must find at the other end. Stores only the SHA-256 of the secret. Does not speak
// the join protocol (enroll.ts) or sign anything (csr.ts).
//
// Token: hg1.<edge CA SHA-256, base64url>.<128-bit secret, base64url>. File store: pki/tokens.json.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { z } from 'zod'
import type { Clock } from '../shared/clock.js'
import { HopgateError } from '../shared/errors.js'
import {
  assertId,
  ensurePrivateDir,
  pkiPath,
  readJsonFile,
  wallNow,
  withFileLock,
} from './state.js'
import { writeFileAtomic } from './state.js'

export interface JoinTokenRecord {
  /** SHA-256 of the secret, hex: the lookup key. The secret itself is never stored. */
  secretHash: string
  runnerId: string
  /** Epoch milliseconds. */
  createdAt: number
  expiresAt: number
  usedAt?: number
}

export interface TokenStore {
  put(record: JoinTokenRecord): Promise<void>
  get(secretHash: string): Promise<JoinTokenRecord | undefined>
  /** Marks the token used at `usedAt` unless it already was; false when it was (or is unknown). */
  markUsed(secretHash: string, usedAt: number): Promise<boolean>
  list(): Promise<JoinTokenRecord[]>
}

const TOKEN_RE = /^hg1\.([A-Za-z0-9_-]{43})\.([A-Za-z0-9_-]{22})$/
const FINGERPRINT_RE = /^[A-Za-z0-9_-]{43}$/
/** Longest lifetime a token may be given: a join token is meant to be used within minutes. */
export const MAX_TOKEN_TTL_MS = 30 * 24 * 3600 * 1000

/** Base64url that decodes to exactly `bytes` and re-encodes to itself (no slack bits). */
function decodeExact(text: string, bytes: number): Buffer | undefined {
  const buf = Buffer.from(text, 'base64url')
  return buf.length === bytes && buf.toString('base64url') === text ? buf : undefined
}

export interface ParsedJoinToken {
  /** The edge CA fingerprint the agent must find (SHA-256 of the DER, base64url). */
  edgeCaFingerprint: string
  secret: Buffer
}

export function parseJoinToken(token: string): ParsedJoinToken {
  const m = typeof token === 'string' ? TOKEN_RE.exec(token.trim()) : null
  const fp = m && decodeExact(m[1]!, 32)
  const secret = m && decodeExact(m[2]!, 16)
  if (!m || !fp || !secret) throw new HopgateError('HOPGATE_ERR_JOIN_TOKEN_MALFORMED')
  return { edgeCaFingerprint: m[1]!, secret }
}

function hashSecret(secret: Buffer): Buffer {
  return createHash('sha256').update(secret).digest()
}

export interface CreateJoinTokenOptions {
  runnerId: string
  ttlMs: number
  /** pki.ts's `edgeCa.fingerprint.base64url`. */
  edgeCaFingerprint: string
  /** Wall clock (epoch ms). */
  clock: Clock
}

export async function createJoinToken(
  store: TokenStore,
  opts: CreateJoinTokenOptions,
): Promise<string> {
  assertId(opts.runnerId)
  if (!Number.isSafeInteger(opts.ttlMs) || opts.ttlMs <= 0 || opts.ttlMs > MAX_TOKEN_TTL_MS) {
    throw new HopgateError('HOPGATE_ERR_CONFIG_INVALID', 'token ttl must be 1 ms to 30 days')
  }
  if (!FINGERPRINT_RE.test(opts.edgeCaFingerprint) || !decodeExact(opts.edgeCaFingerprint, 32)) {
    throw new TypeError('edgeCaFingerprint must be a base64url SHA-256 digest')
  }
  const secret = randomBytes(16)
  const now = wallNow(opts.clock)
  await store.put({
    secretHash: hashSecret(secret).toString('hex'),
    runnerId: opts.runnerId,
    createdAt: now,
    expiresAt: now + opts.ttlMs,
  })
  return `hg1.${opts.edgeCaFingerprint}.${secret.toString('base64url')}`
}

export interface ConsumeOptions {
  /** When given, a token pinning another edge CA is refused as invalid (it was not made here). */
  edgeCaFingerprint?: string
}

/**
 * Spends a token and returns the runner id it was made for. The record is found by the hash of
 * the secret and the hashes compared in constant time; the single-use check is the store's
 * compare-and-set, so two racing joins with one token cannot both win.
 */
export async function consumeJoinToken(
  store: TokenStore,
  token: string,
  clock: Clock,
  opts: ConsumeOptions = {},
): Promise<string> {
  const parsed = parseJoinToken(token)
  if (opts.edgeCaFingerprint !== undefined && parsed.edgeCaFingerprint !== opts.edgeCaFingerprint) {
    throw new HopgateError('HOPGATE_ERR_JOIN_TOKEN_INVALID', 'it pins another edge CA')
  }
  const hash = hashSecret(parsed.secret)
  const record = await store.get(hash.toString('hex'))
  const stored = record && Buffer.from(record.secretHash, 'hex')
  if (!record || !stored || stored.length !== hash.length || !timingSafeEqual(stored, hash)) {
    throw new HopgateError('HOPGATE_ERR_JOIN_TOKEN_INVALID')
  }
  if (record.usedAt !== undefined) throw new HopgateError('HOPGATE_ERR_JOIN_TOKEN_USED')
  const now = wallNow(clock)
  if (now >= record.expiresAt) throw new HopgateError('HOPGATE_ERR_JOIN_TOKEN_EXPIRED')
  if (!(await store.markUsed(record.secretHash, now))) {
    throw new HopgateError('HOPGATE_ERR_JOIN_TOKEN_USED')
  }
  assertId(record.runnerId)
  return record.runnerId
}

/** For tests and single-process tools; the edge uses FileTokenStore. */
export class MemoryTokenStore implements TokenStore {
  private readonly records = new Map<string, JoinTokenRecord>()

  async put(record: JoinTokenRecord): Promise<void> {
    this.records.set(record.secretHash, { ...record })
  }

  async get(secretHash: string): Promise<JoinTokenRecord | undefined> {
    const r = this.records.get(secretHash)
    return r && { ...r }
  }

  async markUsed(secretHash: string, usedAt: number): Promise<boolean> {
    const r = this.records.get(secretHash)
    if (!r || r.usedAt !== undefined) return false
    r.usedAt = usedAt
    return true
  }

  async list(): Promise<JoinTokenRecord[]> {
    return [...this.records.values()].map((r) => ({ ...r }))
  }
}

const RecordSchema = z.object({
  secretHash: z.string().regex(/^[0-9a-f]{64}$/),
  runnerId: z.string(),
  createdAt: z.number(),
  expiresAt: z.number(),
  usedAt: z.number().optional(),
})
const FileSchema = z.object({ version: z.literal(1), tokens: z.array(RecordSchema) })

/** Records this long past expiry are dropped on the next put, so the file stays small. */
const KEEP_EXPIRED_MS = 7 * 24 * 3600 * 1000

/** tokens.json in the state dir: re-read on every call (the CLI adds tokens to a running edge). */
export class FileTokenStore implements TokenStore {
  readonly path: string

  constructor(private readonly stateDir: string) {
    this.path = pkiPath(stateDir, 'tokens.json')
  }

  private async read(): Promise<JoinTokenRecord[]> {
    const raw = await readJsonFile(this.path)
    if (raw === undefined) return []
    const parsed = FileSchema.safeParse(raw)
    if (!parsed.success) {
      throw new HopgateError('HOPGATE_ERR_PKI_STATE_INVALID', `${this.path} has an unknown shape`)
    }
    return parsed.data.tokens
  }

  private async write(tokens: JoinTokenRecord[]): Promise<void> {
    await ensurePrivateDir(pkiPath(this.stateDir, ''))
    const body = JSON.stringify({ version: 1, tokens }, null, 2) + '\n'
    await writeFileAtomic(this.path, body, { mode: 0o600 })
  }

  async put(record: JoinTokenRecord): Promise<void> {
    await ensurePrivateDir(pkiPath(this.stateDir, ''))
    await withFileLock(this.path, async () => {
      const kept = (await this.read()).filter(
        (r) =>
          r.expiresAt > record.createdAt - KEEP_EXPIRED_MS && r.secretHash !== record.secretHash,
      )
      await this.write([...kept, { ...record }])
    })
  }

  async get(secretHash: string): Promise<JoinTokenRecord | undefined> {
    return (await this.read()).find((r) => r.secretHash === secretHash)
  }

  async markUsed(secretHash: string, usedAt: number): Promise<boolean> {
    return withFileLock(this.path, async () => {
      const tokens = await this.read()
      const r = tokens.find((t) => t.secretHash === secretHash)
      if (!r || r.usedAt !== undefined) return false
      r.usedAt = usedAt
      await this.write(tokens)
      return true
    })
  }

  async list(): Promise<JoinTokenRecord[]> {
    return this.read()
  }
}
