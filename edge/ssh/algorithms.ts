// The SSH algorithms the edge offers users and uses upstream: modern only (no SHA-1, no CBC, no
// DSA, no diffie-hellman-group1/14-sha1). ssh2 adds strict key exchange
// (kex-strict-s/c-v00@openssh.com, the Terrapin fix) to these lists itself. Users are offered
// AES-GCM only: OpenSSH clients prefer chacha20-poly1305 and then aes-ctr, but in ssh2 (no
// native binding) chacha20-poly1305 is JavaScript and about half as fast, and GCM is one native
// pass where ctr needs a separate HMAC. Every OpenSSH since 6.2 and PuTTY since 0.76 speak GCM.
import type { Algorithms } from 'ssh2'

const kex = [
  'curve25519-sha256',
  'curve25519-sha256@libssh.org',
  'ecdh-sha2-nistp256',
  'ecdh-sha2-nistp384',
  'ecdh-sha2-nistp521',
  'diffie-hellman-group16-sha512',
  'diffie-hellman-group18-sha512',
] as const
const cipher = [
  'aes128-gcm@openssh.com',
  'aes256-gcm@openssh.com',
  'aes128-ctr',
  'aes256-ctr',
  'chacha20-poly1305@openssh.com',
] as const
const hmac = [
  'hmac-sha2-256-etm@openssh.com',
  'hmac-sha2-512-etm@openssh.com',
  'hmac-sha2-256',
  'hmac-sha2-512',
] as const

export const SERVER_ALGORITHMS: Algorithms = {
  kex: [...kex],
  cipher: ['aes128-gcm@openssh.com', 'aes256-gcm@openssh.com'],
  hmac: [...hmac],
  serverHostKey: ['ssh-ed25519'],
  compress: ['none'],
}

export const UPSTREAM_ALGORITHMS: Algorithms = {
  kex: [...kex],
  cipher: [...cipher],
  hmac: [...hmac],
  serverHostKey: [
    'ssh-ed25519',
    'ecdsa-sha2-nistp256',
    'ecdsa-sha2-nistp384',
    'ecdsa-sha2-nistp521',
    'rsa-sha2-512',
    'rsa-sha2-256',
  ],
  compress: ['none'],
}
