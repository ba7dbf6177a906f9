// Fixtures shared by the control codec tests: one sample of every message type per side, a raw
// framer for hand-made (hostile) bodies, and a decode-everything helper that also reports the
// most bytes the decoder ever held.
import { ControlDecoder, type Unsequenced } from '../../shared/tunnel/control.js'
import type {
  AgentMessage,
  ControlMessage,
  EdgeMessage,
  Side,
} from '../../shared/tunnel/control-schema.js'
import type { HopgateError } from '../../shared/errors.js'

export const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex')
export const P1 = '0f8fad5b-d9cb-469f-a165-70867728950e'
export const P2 = '6ba7b810-9dad-11d1-80b4-00c04fd430c8'
export const services = {
  ssh: true,
  raw: true,
  ports: [8080, [9000, 9099]] as Array<number | [number, number]>,
}

export const agentSamples: Array<Unsequenced<AgentMessage>> = [
  {
    type: 'hello',
    version: 1,
    runnerId: 'runner-a',
    projects: [{ project: P1, services }],
    capacity: { maxProjects: 50, cpus: 16, memoryBytes: 64 * 2 ** 30 },
    storage: { freeBytes: 10 ** 12, totalBytes: 2 * 10 ** 12 },
    directAddress: 'runner-a.cluster.local:7444',
    agentVersion: '0.1.0',
  },
  {
    type: 'heartbeat',
    sentAt: 123456,
    rttMs: 0.8,
    load: { streams: 3, projects: 1 },
    storage: { freeBytes: 5 },
  },
  {
    type: 'renewRequest',
    csr: '-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n',
  },
  {
    type: 'projects',
    added: [{ project: P2, services: { ssh: false, raw: true, ports: [] } }],
    removed: [P1],
  },
  {
    type: 'error',
    code: 'HOPGATE_ERR_CONTROL_BAD_MESSAGE',
    message: 'welcome: bad',
    about: 'welcome',
    aboutSeq: 1,
  },
]
export const edgeSamples: Array<Unsequenced<EdgeMessage>> = [
  {
    type: 'welcome',
    version: 1,
    edgeId: 'edge-1',
    heartbeatIntervalMs: 5000,
    leaseTtlMs: 15000,
    routes: [{ project: P1, epoch: 3 }],
  },
  { type: 'heartbeatAck', echo: 123456, leaseExpiresInMs: 15000 },
  { type: 'routeUpdate', project: P1, epoch: 4, state: 'moving' },
  {
    type: 'drain',
    reason: 'edge shutting down',
    reconnectAfterMs: 0,
    alternatives: ['edge-2.example.com:7443', '[::1]:7443'],
  },
  { type: 'renewResponse', cert: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n' },
  { type: 'error', code: 'HOPGATE_ERR_PKI_REVOKED', message: 'runner revoked' },
]

export function decodeAll(from: Side, chunks: Buffer[]) {
  const messages: ControlMessage[] = []
  let error: HopgateError | undefined
  const d = new ControlDecoder(from, {
    onMessage: (m) => messages.push(m),
    onError: (e) => (error = e),
  })
  let maxHeld = 0
  for (const c of chunks) {
    d.push(c)
    maxHeld = Math.max(maxHeld, d.bufferedBytes)
  }
  d.end()
  return { messages, error, maxHeld }
}

/** One raw frame: u32 length + body, whatever the body is. */
export const frame = (body: string | Buffer): Buffer => {
  const b = typeof body === 'string' ? Buffer.from(body) : body
  const head = Buffer.alloc(4)
  head.writeUInt32BE(b.length)
  return Buffer.concat([head, b])
}
export const helloJson = (extra = ''): string =>
  `{"type":"hello","seq":1,"version":1,"projects":[],"capacity":{"maxProjects":1,"cpus":1,"memoryBytes":1},"storage":{"freeBytes":1,"totalBytes":1},"agentVersion":"x"${extra}}`
