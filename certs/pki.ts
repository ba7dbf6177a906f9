// The edge's PKI in its state directory: creates the runner CA and the edge CA once, issues the
// edge's server and client certificates, and loads and cross-checks them (Node's crypto only).
// Does not renew edge certificates, issue runner certificates (csr.ts) or hold tokens (tokens.ts).
//
// Layout (directory 0700, keys 0600, certificates 0644), under <stateDir>/pki/:
//   runner-ca.key, runner-ca.crt      signs agent client certs (URI urn:hopgate:runner:<id>)
//   edge-ca.key, edge-ca.crt          signs the two edge certs below; pinned by join tokens
//   edge-server.key, edge-server.crt  TLS server cert of the tunnel/join port (EKU serverAuth)
//   edge-client.key, edge-client.crt  client cert for direct dial (URI urn:hopgate:edge:<id>)
//   tokens.json, revoked.json         join tokens (tokens.ts) and the deny list (revocation.ts)
import { X509Certificate, createHash, createPrivateKey, randomBytes } from 'node:crypto'
import { readFile, stat } from 'node:fs/promises'
import { isIP } from 'node:net'
import type { Clock } from '../shared/clock.js'
import { HopgateError, isHopgateError } from '../shared/errors.js'
import {
  EKU_CLIENT_AUTH,
  EKU_SERVER_AUTH,
  URI_PREFIX,
  assertIssuedBy,
  hopgateIdOf,
} from './identity.js'
import { assertLeafUsage } from './identity.js'
import { assertId, ensurePrivateDir, fileExists, pkiPath, wallClock, wallNow } from './state.js'
import { writeFileAtomic } from './state.js'
import { generateKeyPair, issueCertificate } from './x509.js'

const DAY_MS = 24 * 3600 * 1000
export const CA_LIFETIME_MS = 3650 * DAY_MS
export const EDGE_CERT_LIFETIME_MS = 365 * DAY_MS
/** Backdating absorbs clock skew between the edge and the runners that check these certs. */
const BACKDATE_MS = 5 * 60_000

export interface Fingerprint {
  /** SHA-256 of the DER, lower-case hex without separators. */
  hex: string
  /** The same digest, base64url without padding: the form join tokens pin. */
  base64url: string
}

export function fingerprintOf(cert: string | X509Certificate): Fingerprint {
  const x = typeof cert === 'string' ? new X509Certificate(cert) : cert
  const digest = createHash('sha256').update(x.raw).digest()
  return { hex: digest.toString('hex'), base64url: digest.toString('base64url') }
}

export interface PkiEntry {
  certPem: string
  keyPem: string
  fingerprint: Fingerprint
}

export interface EdgeCertEntry extends PkiEntry {
  /** Leaf then edge CA: what the TLS side presents, so agents can check the pinned CA. */
  chainPem: string
}

export interface Pki {
  edgeId: string
  runnerCa: PkiEntry
  edgeCa: PkiEntry
  edgeServer: EdgeCertEntry
  edgeClient: EdgeCertEntry
}

export interface InitCaOptions {
  /** Wall clock (epoch ms) for validity dates. @default wallClock */
  clock?: Clock
  /** Id in the edge client cert's URI SAN. @default 'edge' */
  edgeId?: string
  /** DNS SANs of the edge server cert. @default ['localhost'] */
  dns?: string[]
  /** IP SANs of the edge server cert. @default ['127.0.0.1', '::1'] */
  ips?: string[]
}

type Part = 'runner-ca' | 'edge-ca' | 'edge-server' | 'edge-client'
const PARTS: Part[] = ['runner-ca', 'edge-ca', 'edge-server', 'edge-client']

/**
 * Creates what is absent and keeps what exists (never overwrites), then loads and checks the
 * whole set. A half-written pair (key without cert) is refused rather than guessed at.
 */
export async function initCa(
  stateDir: string,
  opts: InitCaOptions = {},
): Promise<{ pki: Pki; created: string[] }> {
  const clock = opts.clock ?? wallClock
  const edgeId = opts.edgeId ?? 'edge'
  assertId(edgeId)
  const dns = opts.dns ?? ['localhost']
  const ips = opts.ips ?? ['127.0.0.1', '::1']
  for (const ip of ips) {
    if (isIP(ip) === 0) throw new HopgateError('HOPGATE_ERR_CONFIG_INVALID', `not an IP: ${ip}`)
  }
  if (dns.some((d) => !/^[A-Za-z0-9*]([A-Za-z0-9.-]{0,252})$/.test(d))) {
    throw new HopgateError('HOPGATE_ERR_CONFIG_INVALID', 'edge server DNS name is not valid')
  }
  await ensurePrivateDir(stateDir)
  await ensurePrivateDir(pkiPath(stateDir, ''))
  const notBefore = new Date(wallNow(clock) - BACKDATE_MS)
  const install = randomBytes(4).toString('hex')
  const created: string[] = []
  for (const part of PARTS) {
    const keyFile = pkiPath(stateDir, `${part}.key`)
    const certFile = pkiPath(stateDir, `${part}.crt`)
    const [hasKey, hasCert] = [await fileExists(keyFile), await fileExists(certFile)]
    if (hasKey && hasCert) continue
    if (hasKey || hasCert) {
      throw new HopgateError('HOPGATE_ERR_PKI_STATE_INVALID', `${part}: key or cert missing`)
    }
    const key = generateKeyPair()
    const base = { publicKeyPem: key.publicKeyPem, notBefore }
    let certPem: string
    if (part === 'runner-ca' || part === 'edge-ca') {
      // A per-install suffix keeps subjects distinct, so one install's CA never "issued" another's.
      const commonName = `hopgate ${part === 'runner-ca' ? 'runner' : 'edge'} CA ${install}`
      certPem = issueCertificate({
        ...base,
        commonName,
        issuerKeyPem: key.privateKeyPem,
        isCA: true,
        lifetimeMs: CA_LIFETIME_MS,
      })
    } else {
      const issuer = {
        issuerKeyPem: await readFile(pkiPath(stateDir, 'edge-ca.key'), 'utf8'),
        issuerCertPem: await readFile(pkiPath(stateDir, 'edge-ca.crt'), 'utf8'),
        lifetimeMs: EDGE_CERT_LIFETIME_MS,
      }
      certPem =
        part === 'edge-server'
          ? issueCertificate({
              ...base,
              ...issuer,
              commonName: `hopgate edge ${edgeId}`,
              dns,
              ips,
              serverAuth: true,
            })
          : issueCertificate({
              ...base,
              ...issuer,
              commonName: `hopgate edge ${edgeId} client`,
              uris: [URI_PREFIX.edge + edgeId],
              clientAuth: true,
            })
    }
    await writeFileAtomic(keyFile, key.privateKeyPem, { mode: 0o600, overwrite: false })
    await writeFileAtomic(certFile, certPem, { mode: 0o644, overwrite: false })
    created.push(keyFile, certFile)
  }
  return { pki: await loadPki(stateDir), created }
}

async function readEntry(stateDir: string, part: Part): Promise<PkiEntry & { x: X509Certificate }> {
  const keyFile = pkiPath(stateDir, `${part}.key`)
  try {
    const st = await stat(keyFile)
    // Like ssh with its keys: a world-accessible CA key is a compromise, not a setting.
    if ((st.mode & 0o007) !== 0) {
      throw new HopgateError('HOPGATE_ERR_PKI_STATE_INVALID', `${keyFile} is accessible to others`)
    }
    const keyPem = await readFile(keyFile, 'utf8')
    const certPem = await readFile(pkiPath(stateDir, `${part}.crt`), 'utf8')
    const x = new X509Certificate(certPem)
    if (!x.checkPrivateKey(createPrivateKey(keyPem))) {
      throw new HopgateError('HOPGATE_ERR_PKI_STATE_INVALID', `${part}: key does not match cert`)
    }
    return { certPem, keyPem, fingerprint: fingerprintOf(x), x }
  } catch (err) {
    if (isHopgateError(err)) throw err
    throw new HopgateError('HOPGATE_ERR_PKI_STATE_INVALID', `${part}: run "hopgate ca init"`, {
      cause: err,
    })
  }
}

function checked(what: string, fn: () => void): void {
  try {
    fn()
  } catch (err) {
    throw new HopgateError('HOPGATE_ERR_PKI_STATE_INVALID', `${what}: ${(err as Error).message}`, {
      cause: err,
    })
  }
}

/** Loads the edge's PKI and checks it hangs together (validity dates are not checked here). */
export async function loadPki(stateDir: string): Promise<Pki> {
  const [runnerCa, edgeCa, edgeServer, edgeClient] = await Promise.all(
    PARTS.map((p) => readEntry(stateDir, p)),
  )
  if (!runnerCa || !edgeCa || !edgeServer || !edgeClient) throw new Error('unreachable')
  for (const [name, ca] of [
    ['runner CA', runnerCa],
    ['edge CA', edgeCa],
  ] as const) {
    checked(name, () => {
      if (!ca.x.ca) throw new Error('not a CA certificate')
      assertIssuedBy(ca.x, ca.x)
    })
  }
  let edgeId = ''
  checked('edge server cert', () => {
    assertIssuedBy(edgeServer.x, edgeCa.x)
    assertLeafUsage(edgeServer.x, EKU_SERVER_AUTH)
  })
  checked('edge client cert', () => {
    assertIssuedBy(edgeClient.x, edgeCa.x)
    assertLeafUsage(edgeClient.x, EKU_CLIENT_AUTH)
    edgeId = hopgateIdOf(edgeClient.x, 'edge')
  })
  const strip = ({ x: _x, ...entry }: PkiEntry & { x: X509Certificate }): PkiEntry => entry
  return {
    edgeId,
    runnerCa: strip(runnerCa),
    edgeCa: strip(edgeCa),
    edgeServer: { ...strip(edgeServer), chainPem: edgeServer.certPem + edgeCa.certPem },
    edgeClient: { ...strip(edgeClient), chainPem: edgeClient.certPem + edgeCa.certPem },
  }
}
