// The catalogue of hopgate's typed errors: a stable `code` per failure and what it maps to on the
// wire (yamux GoAway code, later HTTP status and stream-open status) and at the CLI (exit code).
// docs/errors.md lists every code; test/errors.test.ts keeps the two in step. Branch on `code`,
// never on `message`. Retired codes stay listed and are never reused.

export interface ErrorSpec {
  /** Human summary; the instance message may add detail after it. */
  readonly message: string
  /** yamux GoAway code sent when this error ends a session (0 normal, 1 protocol, 2 internal). */
  readonly goAway?: 0 | 1 | 2
  /** HTTP status when this error answers a user request. */
  readonly httpStatus?: number
  /** Process exit code when this error ends a CLI command. */
  readonly exitCode?: number
}

export const ERROR_CATALOG = {
  HOPGATE_ERR_CONFIG_INVALID: { message: 'configuration is invalid', exitCode: 78 },
  HOPGATE_ERR_ABORTED: { message: 'operation aborted' },
  HOPGATE_ERR_INTERNAL: { message: 'internal error', httpStatus: 500 },

  // yamux: the peer broke the protocol. The session answers with GoAway(protocol error) and closes.
  HOPGATE_ERR_YAMUX_BAD_VERSION: { message: 'yamux frame has an unknown version', goAway: 1 },
  HOPGATE_ERR_YAMUX_BAD_TYPE: { message: 'yamux frame has an unknown type', goAway: 1 },
  HOPGATE_ERR_YAMUX_BAD_FLAGS: {
    message: 'yamux frame has flags its type does not allow',
    goAway: 1,
  },
  HOPGATE_ERR_YAMUX_BAD_STREAM_ID: {
    message: 'yamux frame names a stream id that is not valid here',
    goAway: 1,
  },
  HOPGATE_ERR_YAMUX_DUPLICATE_STREAM: {
    message: 'yamux SYN for a stream id already in use',
    goAway: 1,
  },
  HOPGATE_ERR_YAMUX_UNEXPECTED_FRAME: {
    message: 'yamux frame for a stream the peer already closed or reset',
    goAway: 1,
  },
  HOPGATE_ERR_YAMUX_FRAME_TOO_LARGE: {
    message: 'yamux data frame is larger than any window allows',
    goAway: 1,
  },
  HOPGATE_ERR_YAMUX_RECV_WINDOW_EXCEEDED: {
    message: 'yamux peer sent more data than the receive window allows',
    goAway: 1,
  },
  HOPGATE_ERR_YAMUX_WINDOW_OVERFLOW: {
    message: 'yamux window update grows the send window past 2^31-1',
    goAway: 1,
  },
  HOPGATE_ERR_YAMUX_OPEN_FLOOD: {
    message: 'yamux peer keeps opening streams past the accept backlog',
    goAway: 1,
  },

  // yamux: the session or a stream ended for a reason that is not a protocol violation.
  HOPGATE_ERR_YAMUX_KEEPALIVE_TIMEOUT: {
    message: 'yamux keepalive ping was not answered in time',
    goAway: 2,
  },
  HOPGATE_ERR_YAMUX_CONNECTION_WRITE_TIMEOUT: {
    message: 'yamux transport accepted no writes for too long',
    goAway: 2,
  },
  HOPGATE_ERR_YAMUX_SESSION_SHUTDOWN: { message: 'yamux session is closed' },
  HOPGATE_ERR_YAMUX_REMOTE_GOAWAY: { message: 'yamux peer sent GoAway: no new streams' },
  HOPGATE_ERR_YAMUX_GOING_AWAY: { message: 'yamux session is going away: no new streams' },
  HOPGATE_ERR_YAMUX_STREAM_RESET: { message: 'yamux stream was reset by the peer' },
  HOPGATE_ERR_YAMUX_STREAM_REFUSED: { message: 'yamux peer refused to open the stream' },
  HOPGATE_ERR_YAMUX_STREAMS_EXHAUSTED: { message: 'yamux session has no stream ids left' },
  HOPGATE_ERR_YAMUX_TOO_MANY_STREAMS: { message: 'yamux session is at its stream limit' },
  HOPGATE_ERR_YAMUX_BACKLOG_FULL: {
    message: 'yamux has too many opens the peer has not acknowledged',
  },
  HOPGATE_ERR_YAMUX_OPEN_TIMEOUT: { message: 'yamux peer did not acknowledge the stream in time' },
  HOPGATE_ERR_YAMUX_WRITE_TIMEOUT: { message: 'yamux stream write did not complete in time' },
  HOPGATE_ERR_YAMUX_CLOSE_TIMEOUT: { message: 'yamux peer did not close its side in time' },
  HOPGATE_ERR_YAMUX_PING_TIMEOUT: { message: 'yamux ping was not answered in time' },

  // Stream-open header (shared/tunnel/open-header.ts): the edge built, or the agent received, a
  // header that breaks docs/PROTOCOL.md. Per stream: the agent answers status 5 and resets it.
  HOPGATE_ERR_OPEN_HEADER_TOO_LARGE: { message: 'stream-open header is longer than 1 KiB' },
  HOPGATE_ERR_OPEN_HEADER_TRUNCATED: { message: 'stream-open header ends inside a field' },
  HOPGATE_ERR_OPEN_HEADER_BAD_VERSION: { message: 'stream-open header has an unknown version' },
  HOPGATE_ERR_OPEN_HEADER_BAD_FLAGS: { message: 'stream-open header sets reserved flag bits' },
  HOPGATE_ERR_OPEN_HEADER_BAD_PROJECT: {
    message: 'stream-open header project is not a lowercase UUID',
  },
  HOPGATE_ERR_OPEN_HEADER_UNKNOWN_SERVICE: {
    message: 'stream-open header names an unknown service',
  },
  HOPGATE_ERR_OPEN_HEADER_BAD_PORT: {
    message: 'stream-open header port must be 1-65535 for service port and 0 otherwise',
  },
  HOPGATE_ERR_OPEN_HEADER_BAD_EPOCH: {
    message: 'stream-open header route epoch is not in 1..2^53-1',
  },
  HOPGATE_ERR_OPEN_HEADER_BAD_ADDRESS: {
    message: 'stream-open header client address is not ip:port or [ipv6]:port',
  },
  HOPGATE_ERR_OPEN_HEADER_BAD_TRACE_ID: {
    message: 'stream-open header trace id is not 1-64 of [A-Za-z0-9._-]',
  },
  HOPGATE_ERR_OPEN_HEADER_BAD_EXTENSION: {
    message: 'stream-open header has an extension that must be understood, or out of order',
  },
  HOPGATE_ERR_OPEN_HEADER_TRAILING_GARBAGE: {
    message: 'stream-open header has bytes after its fields that form no extension',
  },

  // Open status (shared/tunnel/open-status.ts): the agent's answer to a stream-open header, as
  // the edge raises it. Per stream, never a GoAway; the HTTP status is what the user gets.
  HOPGATE_ERR_OPEN_UNKNOWN_PROJECT: {
    message: 'runner does not host the project',
    httpStatus: 404,
  },
  HOPGATE_ERR_OPEN_STALE_EPOCH: {
    message: 'runner holds another route epoch for the project',
    httpStatus: 503,
  },
  HOPGATE_ERR_OPEN_REFUSED: {
    message: 'runner policy refuses this service or port of the project',
    httpStatus: 403,
  },
  HOPGATE_ERR_OPEN_TARGET_DOWN: {
    message: 'runner could not reach the project service',
    httpStatus: 502,
  },
  HOPGATE_ERR_OPEN_BAD_HEADER: {
    message: 'runner refused the stream-open header',
    httpStatus: 502,
  },
  HOPGATE_ERR_OPEN_OVERLOADED: {
    message: 'runner takes no new streams now (draining or at a limit)',
    httpStatus: 503,
  },
  HOPGATE_ERR_OPEN_BAD_STATUS: {
    message: 'runner answered an unknown open status',
    httpStatus: 502,
  },

  // Control stream (shared/tunnel/control.ts): a hostile or broken control message ends the
  // session with GoAway(protocol error); other sessions are untouched.
  HOPGATE_ERR_CONTROL_TOO_LARGE: { message: 'control message is longer than 64 KiB', goAway: 1 },
  HOPGATE_ERR_CONTROL_BAD_JSON: { message: 'control message is not UTF-8 JSON', goAway: 1 },
  HOPGATE_ERR_CONTROL_BAD_MESSAGE: {
    message: 'control message does not match the schema of its type',
    goAway: 1,
  },
  HOPGATE_ERR_CONTROL_UNKNOWN_TYPE: {
    message: 'control message type is unknown or not sent by that side',
    goAway: 1,
  },
  HOPGATE_ERR_CONTROL_OUT_OF_ORDER: {
    message: 'control message is out of sequence or before the handshake',
    goAway: 1,
  },
  HOPGATE_ERR_CONTROL_TRUNCATED: {
    message: 'control stream ended inside a message',
    goAway: 1,
  },
  HOPGATE_ERR_CONTROL_ID_MISMATCH: {
    message: 'the runner id in the hello differs from the certificate',
    goAway: 1,
  },
  HOPGATE_ERR_CONTROL_REFUSED: { message: 'the edge refused the session' },

  // PKI (certs/): state files and peer identity. Identity errors end a TLS connection before any
  // yamux session exists, so they carry no GoAway code.
  HOPGATE_ERR_PKI_ID_INVALID: {
    message: 'runner or edge id must be 1-63 of [a-z0-9-], starting with a letter or digit',
    exitCode: 2,
  },
  HOPGATE_ERR_PKI_STATE_INVALID: {
    message: 'PKI files in the state directory are missing, unreadable or inconsistent',
  },
  HOPGATE_ERR_PKI_STATE_LOCKED: { message: 'a state file stayed locked by another process' },
  HOPGATE_ERR_PKI_NO_PEER_CERT: { message: 'peer presented no certificate' },
  HOPGATE_ERR_PKI_WRONG_ISSUER: { message: 'certificate was not issued by the expected CA' },
  HOPGATE_ERR_PKI_CERT_EXPIRED: { message: 'certificate is expired or not yet valid' },
  HOPGATE_ERR_PKI_WRONG_USAGE: {
    message: 'certificate is a CA or lacks the required extended key usage',
  },
  HOPGATE_ERR_PKI_BAD_IDENTITY: {
    message: 'certificate does not name exactly one hopgate identity of the expected kind',
  },
  HOPGATE_ERR_PKI_REVOKED: { message: 'runner or certificate is revoked' },
  HOPGATE_ERR_PKI_TLS_UNVERIFIED: { message: 'TLS did not verify the peer certificate chain' },

  // Enrollment (certs/enroll.ts): join tokens and the join exchange. Messages never hold secrets.
  HOPGATE_ERR_JOIN_TOKEN_MALFORMED: {
    message: 'join token is not of the form hg1.<fingerprint>.<secret>',
    exitCode: 2,
  },
  HOPGATE_ERR_JOIN_TOKEN_INVALID: { message: 'join token is not known to this edge' },
  HOPGATE_ERR_JOIN_TOKEN_EXPIRED: { message: 'join token has expired' },
  HOPGATE_ERR_JOIN_TOKEN_USED: { message: 'join token was already used' },
  HOPGATE_ERR_JOIN_CSR_INVALID: {
    message: 'certificate signing request is malformed, badly signed or has a weak key',
  },
  HOPGATE_ERR_JOIN_MESSAGE_TOO_LARGE: { message: 'join message is larger than allowed' },
  HOPGATE_ERR_JOIN_BAD_MESSAGE: {
    message: 'join message is malformed or of an unknown type or version',
  },
  HOPGATE_ERR_JOIN_TIMEOUT: { message: 'join exchange did not complete in time' },
  HOPGATE_ERR_JOIN_CONNECTION_FAILED: {
    message: 'join connection failed or closed before the answer',
  },
  HOPGATE_ERR_JOIN_ALPN_MISMATCH: {
    message: 'the TLS peer did not select the expected hopgate protocol (ALPN)',
  },
  HOPGATE_ERR_JOIN_EDGE_UNTRUSTED: {
    message: 'edge certificate chain does not end in the CA pinned by the join token',
  },
  HOPGATE_ERR_JOIN_INTERNAL: { message: 'edge failed to complete the join' },
  HOPGATE_ERR_JOIN_REFUSED: { message: 'edge refused the join with an unknown code' },

  // Routing (edge/routing/): routes, runner leases and the route store. A refused stream answers
  // with the HTTP status; a corrupt or unwritable store stops the edge at startup.
  HOPGATE_ERR_ROUTE_PROJECT_INVALID: {
    message: 'project id is not a lowercase UUID',
    httpStatus: 400,
    exitCode: 2,
  },
  HOPGATE_ERR_ROUTE_STATE_INVALID: {
    message: 'route state is not one of active, moving, draining',
    httpStatus: 400,
    exitCode: 2,
  },
  HOPGATE_ERR_ROUTE_NOT_FOUND: { message: 'project has no route', httpStatus: 404 },
  HOPGATE_ERR_ROUTE_CONFLICT: {
    message: 'route compare-and-set lost: the epoch changed',
    httpStatus: 409,
  },
  HOPGATE_ERR_ROUTE_MOVING: { message: 'project is moving to another runner', httpStatus: 503 },
  HOPGATE_ERR_RUNNER_INVALID: {
    message: 'runner id, lease or reported fields are invalid',
    httpStatus: 400,
    exitCode: 2,
  },
  HOPGATE_ERR_RUNNER_UNKNOWN: { message: 'runner is not registered' },
  HOPGATE_ERR_RUNNER_UNAVAILABLE: {
    message: 'the runner of this project is unavailable',
    httpStatus: 503,
  },
  HOPGATE_ERR_RUNNER_NONE_AVAILABLE: {
    message: 'no healthy runner has room for the project',
    httpStatus: 503,
  },
  HOPGATE_ERR_STORE_CORRUPT: { message: 'route store file is corrupt', exitCode: 65 },
  HOPGATE_ERR_STORE_IO: {
    message: 'route store could not read or write its file',
    httpStatus: 503,
    exitCode: 74,
  },
  HOPGATE_ERR_STORE_CLOSED: { message: 'route store is closed', httpStatus: 503 },

  // Edge admin API (edge/admin.ts) and the CLI commands that call it.
  HOPGATE_ERR_ADMIN_BAD_REQUEST: {
    message: 'admin request body is not the JSON the endpoint expects',
    httpStatus: 400,
  },
  HOPGATE_ERR_ADMIN_NOT_FOUND: {
    message: 'no admin endpoint at this method and path',
    httpStatus: 404,
  },
  HOPGATE_ERR_ADMIN_UNREACHABLE: { message: 'the edge admin API could not be reached' },
  HOPGATE_ERR_ADMIN_FAILED: { message: 'the edge admin API answered with an error' },

  // Access store (edge/auth/): collaborators and SSH keys, kept by the embedded or Redis store.
  HOPGATE_ERR_ACCESS_ACCOUNT_INVALID: {
    message: 'account id is not 1-64 characters of [a-z0-9._@-]',
    httpStatus: 400,
    exitCode: 2,
  },
  HOPGATE_ERR_SSH_KEY_INVALID: {
    message: 'SSH public key is not a valid OpenSSH key line',
    httpStatus: 400,
    exitCode: 2,
  },
  HOPGATE_ERR_SSH_KEY_TAKEN: {
    message: 'SSH key already belongs to another account',
    httpStatus: 409,
  },

  // Agent: local admin socket, certificate renewal (issue 3).
  HOPGATE_ERR_RENEW_FAILED: { message: 'certificate renewal over the control stream failed' },
  HOPGATE_ERR_RENEW_WRONG_RUNNER: {
    message: 'renewal request names another runner than the session certificate',
  },
  HOPGATE_ERR_AGENT_ADMIN_BAD_REQUEST: {
    message: 'agent admin socket request is not valid',
    exitCode: 2,
  },
  HOPGATE_ERR_AGENT_ADMIN_UNREACHABLE: { message: 'the agent admin socket could not be reached' },
  HOPGATE_ERR_AGENT_PROJECTS_STATE_INVALID: {
    message: "the agent's saved runtime project changes are damaged",
    exitCode: 65,
  },
  HOPGATE_ERR_AGENT_PROJECTS_SAVE_FAILED: {
    message: 'a runtime project change could not be saved (nothing was changed)',
  },

  // HTTP and WebSocket ingress (issue 4).
  HOPGATE_ERR_HTTP_BAD_TARGET: {
    message: 'request target is not a valid hopgate URL',
    httpStatus: 400,
  },
  HOPGATE_ERR_HTTP_TARGET_TOO_LONG: {
    message: 'request target is longer than 4 KiB',
    httpStatus: 414,
  },
  HOPGATE_ERR_HTTP_BAD_REQUEST: {
    message: 'request is malformed (duplicate Host, too many headers, or a refused upgrade)',
    httpStatus: 400,
  },
  HOPGATE_ERR_HTTP_UNAUTHENTICATED: {
    message: 'no valid hopgate credentials (bearer token or session cookie)',
    httpStatus: 401,
  },
  HOPGATE_ERR_HTTP_FORBIDDEN: {
    message: 'the account is not a collaborator of the project',
    httpStatus: 403,
  },
  HOPGATE_ERR_HTTP_UPSTREAM_FAILED: {
    message: 'the project service closed or broke the connection before answering',
    httpStatus: 502,
  },
  HOPGATE_ERR_HTTP_UPSTREAM_TIMEOUT: {
    message: 'the project service did not answer in time',
    httpStatus: 504,
  },
  HOPGATE_ERR_WS_BAD_UPGRADE: {
    message:
      'upgrade is not a valid WebSocket handshake (GET, Upgrade: websocket, key, version 13)',
    httpStatus: 400,
  },
  HOPGATE_ERR_WS_LIMIT: {
    message: 'the project has as many open WebSockets as the edge allows',
    httpStatus: 503,
  },
  HOPGATE_ERR_TOKEN_MALFORMED: {
    message: 'user token is not of the form hgu1.<payload>.<signature>',
    httpStatus: 401,
    exitCode: 2,
  },
  HOPGATE_ERR_TOKEN_BAD_SIGNATURE: {
    message: 'user token signature does not verify with this edge key',
    httpStatus: 401,
  },
  HOPGATE_ERR_TOKEN_EXPIRED: {
    message: 'user token has expired or is not yet valid',
    httpStatus: 401,
  },
  HOPGATE_ERR_TOKEN_REPLAYED: {
    message: 'one-time ?hopgate_token= link was already used',
    httpStatus: 401,
  },
  HOPGATE_ERR_TOKEN_KEY_INVALID: {
    message: 'user token signing key in the state directory is unreadable or not Ed25519',
  },

  // SSH ingress (issue 5).
  HOPGATE_ERR_SSH_BAD_USERNAME: {
    message: 'SSH username does not name a project',
  },
  HOPGATE_ERR_SSH_MALFORMED: { message: 'SSH key, signature or certificate bytes do not parse' },
  HOPGATE_ERR_SSH_UNSUPPORTED_KEY: {
    message: 'SSH key or signature algorithm is not one hopgate accepts',
  },
  HOPGATE_ERR_SSH_AUTH_FAILED: { message: 'SSH key is unknown or its signature does not verify' },
  HOPGATE_ERR_SSH_NO_ACCESS: { message: 'SSH account is not a collaborator of the project' },
  HOPGATE_ERR_SSH_CERT_UNTRUSTED: {
    message: 'SSH certificate is not signed by a trusted user CA, or its signature is bad',
  },
  HOPGATE_ERR_SSH_CERT_EXPIRED: { message: 'SSH certificate is outside its validity window' },
  HOPGATE_ERR_SSH_CERT_PRINCIPAL: {
    message: 'SSH certificate names no principal that is this account',
  },
  HOPGATE_ERR_SSH_CERT_OPTION: {
    message: 'SSH certificate has a critical option that refuses this login',
  },
  HOPGATE_ERR_SSH_PREAUTH_LIMIT: {
    message: 'SSH connection refused: too many unauthenticated connections',
  },
  HOPGATE_ERR_SSH_PENALTY: { message: 'SSH source is penalised after repeated failures' },
  HOPGATE_ERR_SSH_TOO_MANY_TRIES: { message: 'SSH client used up its authentication tries' },
  HOPGATE_ERR_SSH_LOGIN_GRACE: {
    message: 'SSH client did not authenticate within the login grace time',
  },
  HOPGATE_ERR_SSH_UPSTREAM_FAILED: {
    message: "the project's sshd could not be reached or refused the edge's upstream key",
  },
  HOPGATE_ERR_SSH_UPSTREAM_HOSTILE: {
    message: "the project's sshd broke channel limits and was cut off",
  },
  HOPGATE_ERR_SSH_UPSTREAM_TIMEOUT: {
    message:
      "the project's sshd did not answer a channel open or session request in time and was cut off",
  },
  HOPGATE_ERR_SSH_FORWARD_REFUSED: { message: 'SSH forwarding request is not allowed here' },

  // Redis store, edge registry, forwarding and drain (issue 6).
  HOPGATE_ERR_STORE_UNAVAILABLE: {
    message: 'the shared store is unreachable and nothing cached can answer',
    httpStatus: 503,
  },
  HOPGATE_ERR_REGISTRY_INVALID: {
    message: 'edge registration has an invalid id, address or lease',
    exitCode: 78,
  },
  HOPGATE_ERR_PEER_UNAVAILABLE: {
    message: 'no edge holding a session to the runner could take the forwarded stream',
    httpStatus: 503,
  },
  HOPGATE_ERR_PEER_REFUSED: {
    message: 'the peer edge refused the forwarded stream (no session there, or hop limit)',
  },
  HOPGATE_ERR_PEER_BAD_PREAMBLE: {
    message: 'forwarded-stream preamble is malformed or of an unknown version',
  },
  HOPGATE_ERR_EDGE_DRAINING: {
    message: 'the edge is draining and takes no new connections',
    httpStatus: 503,
  },
  HOPGATE_ERR_DISCOVERY_FAILED: {
    message: 'the discovery URL could not be read or listed no edge',
  },
} as const satisfies Record<string, ErrorSpec>

export type ErrorCode = keyof typeof ERROR_CATALOG

export class HopgateError extends Error {
  readonly code: ErrorCode
  readonly goAway: 0 | 1 | 2 | undefined
  readonly httpStatus: number | undefined
  readonly exitCode: number | undefined

  constructor(code: ErrorCode, detail?: string, options?: { cause?: unknown }) {
    const spec: ErrorSpec = ERROR_CATALOG[code]
    super(detail ? `${spec.message}: ${detail}` : spec.message, options)
    this.name = 'HopgateError'
    this.code = code
    this.goAway = spec.goAway
    this.httpStatus = spec.httpStatus
    this.exitCode = spec.exitCode
  }
}

export function isHopgateError(err: unknown, code?: ErrorCode): err is HopgateError {
  return err instanceof HopgateError && (code === undefined || err.code === code)
}

/** The error to reject with when `signal` fired: its reason if typed, else HOPGATE_ERR_ABORTED. */
export function abortError(signal: AbortSignal): Error {
  const reason: unknown = signal.reason
  if (reason instanceof HopgateError) return reason
  return new HopgateError('HOPGATE_ERR_ABORTED', undefined, { cause: reason })
}
