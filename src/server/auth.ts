/**
 * Bearer tokens with roles. A workbench token submits, reads and cancels its own orders; a
 * viewer token reads every order, job and event stream and changes nothing; a worker token
 * registers, heartbeats and fetches products; an admin token does everything.
 */
import { timingSafeEqual } from 'node:crypto'
import { LockstepError, ValidationError } from '../core/errors.ts'
import type { IncomingHttpHeaders } from 'node:http'

export type Role = 'workbench' | 'viewer' | 'worker' | 'admin'

/** One configured token. */
export interface TokenEntry {
  token: string
  role: Role
  /** Who the token speaks for: the owner of the orders it submits. */
  name: string
}

/** Who is calling; `public` on the routes that need no token (health, metrics, the document). */
export interface Caller {
  name: string
  role: Role | 'public'
}

/** The caller of a route that needs no token. */
export const publicCaller: Caller = { name: 'anonymous', role: 'public' }

const roles: readonly Role[] = ['workbench', 'viewer', 'worker', 'admin']

/**
 * Reads tokens written as `role:name:token`, separated by commas or newlines (the form of
 * `LOCKSTEP_TOKENS`), e.g. `admin:ops:s3cret,worker:fleet:w0rk`.
 */
export function parseTokens(text: string): TokenEntry[] {
  const out: TokenEntry[] = []
  const entries = text
    .split(/[,\n]/)
    .map((e) => e.trim())
    .filter((e) => e !== '')
  entries.forEach((entry, i) => {
    const [role, name, ...rest] = entry.split(':')
    const token = rest.join(':')
    if (!roles.includes(role as Role) || name === undefined || name === '' || token.length < 8) {
      throw new ValidationError([
        {
          path: `tokens[${i}]`,
          message: `write role:name:token with a role of ${roles.join(', ')} and a token of 8 or more characters`,
        },
      ])
    }
    out.push({ role: role as Role, name, token })
  })
  return out
}

export class Auth {
  private readonly tokens: TokenEntry[]

  /** With no tokens the server is open: every caller is an admin named `anonymous`. */
  constructor(tokens: readonly TokenEntry[]) {
    this.tokens = [...tokens]
  }

  get open(): boolean {
    return this.tokens.length === 0
  }

  /** The caller of a request, who must hold one of `allowed`. */
  check(headers: IncomingHttpHeaders, allowed: readonly Role[]): Caller {
    if (this.open) return { name: 'anonymous', role: 'admin' }
    const header = headers.authorization ?? ''
    const m = /^Bearer\s+(\S+)$/i.exec(header)
    if (m === null) {
      throw new LockstepError(
        'UNAUTHORIZED',
        'send a token as "Authorization: Bearer <token>"; ask your administrator for one',
      )
    }
    const given = Buffer.from(m[1]!)
    const entry = this.tokens.find((t) => {
      const known = Buffer.from(t.token)
      return known.length === given.length && timingSafeEqual(known, given)
    })
    if (entry === undefined) throw new LockstepError('UNAUTHORIZED', 'this token is not known')
    if (entry.role !== 'admin' && !allowed.includes(entry.role)) {
      throw new LockstepError(
        'FORBIDDEN',
        `a ${entry.role} token may not do this; it needs a ${allowed.join(' or ')} token`,
      )
    }
    return { name: entry.name, role: entry.role }
  }
}
