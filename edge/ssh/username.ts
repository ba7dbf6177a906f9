// The SSH username, parsed once: a project in one of CoCalc's three forms (the lowercase UUID,
// the UUID without dashes, `project-<uuid>`) selects upstream mode; an account id selects
// ProxyJump mode. Anything else, including project-looking strings that are malformed or in
// upper case, is refused before authentication. The result is never used in a path or command.
import { HopgateError } from '../../shared/errors.js'
import { isAccountId } from '../auth/embedded-access.js'

export type SshUser =
  | { readonly kind: 'project'; readonly project: string }
  | { readonly kind: 'account'; readonly account: string }

const DASHED = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
const BARE = /^[0-9a-f]{32}$/
// Strings a user meant as a project (the prefix, or mostly hex digits as a UUID is) are
// refused, never read as an account name: a typo must not become a ProxyJump login.
function projectLike(s: string): boolean {
  return s.toLowerCase().startsWith('project-') || (s.match(/[0-9a-f]/gi) ?? []).length >= 24
}

function dash(hex: string): string {
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
}

/** Throws HOPGATE_ERR_SSH_BAD_USERNAME for anything that is not one of the accepted forms. */
export function parseSshUsername(username: string): SshUser {
  const rest = username.startsWith('project-') ? username.slice('project-'.length) : username
  if (DASHED.test(rest)) return { kind: 'project', project: rest }
  if (rest === username && BARE.test(rest)) return { kind: 'project', project: dash(rest) }
  if (!projectLike(username) && isAccountId(username)) {
    return { kind: 'account', account: username }
  }
  throw new HopgateError(
    'HOPGATE_ERR_SSH_BAD_USERNAME',
    'use ssh <project-uuid>@edge, <uuid without dashes> or project-<uuid>; ProxyJump uses <account>',
  )
}
