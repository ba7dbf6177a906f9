// The contract for who may use what: a project's collaborators (the ACL that HTTP, WebSocket and
// SSH ingress all check) and the accounts' SSH public keys. Implemented by the embedded store
// (embedded-access.ts, a file in the state directory) and the Redis store (issue 6). Holds no
// policy: caching decisions, token checks and key verification live with the ingresses.

/** An account id: what a user token or an SSH certificate principal names. */
export type AccountId = string

export interface SshKeyRecord {
  readonly account: AccountId
  /** OpenSSH SHA256 fingerprint, `SHA256:<base64 without padding>`: the record's key. */
  readonly fingerprint: string
  /** The key type, e.g. `ssh-ed25519`. */
  readonly type: string
  /** The public key blob, base64 as in an authorized_keys line. */
  readonly publicKey: string
  readonly comment: string
  /** Wall-clock Unix ms. */
  readonly addedAt: number
}

export type AccessChange =
  | { readonly kind: 'acl'; readonly project: string; readonly account: AccountId }
  | { readonly kind: 'ssh-key'; readonly account: AccountId; readonly fingerprint: string }

export interface AccessStore {
  isCollaborator(project: string, account: AccountId): Promise<boolean>
  /** Idempotent; resolves once durable. False if the account already was a collaborator. */
  grant(project: string, account: AccountId): Promise<boolean>
  /** Resolves once durable. False if the account was not a collaborator. */
  revoke(project: string, account: AccountId): Promise<boolean>
  /** Sorted. */
  collaborators(project: string): Promise<AccountId[]>
  /** Sorted. */
  projectsOf(account: AccountId): Promise<string[]>

  /** Adds a key to an account; a fingerprint belongs to at most one account (else a typed error). */
  addSshKey(record: Omit<SshKeyRecord, 'addedAt'>): Promise<SshKeyRecord>
  removeSshKey(account: AccountId, fingerprint: string): Promise<boolean>
  listSshKeys(account: AccountId): Promise<SshKeyRecord[]>
  /** The record holding this fingerprint, if any: how a verified key names its account. */
  findSshKey(fingerprint: string): Promise<SshKeyRecord | undefined>

  /** Called after each durable change, in commit order; returns the unsubscribe function. */
  onChange(listener: (change: AccessChange) => void): () => void
  close(): Promise<void>
}
