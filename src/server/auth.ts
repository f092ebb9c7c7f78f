/**
 * Bearer tokens with roles. A workbench token submits, reads and cancels its own orders; a
 * viewer token reads every order, job and event stream and changes nothing; a worker token
 * registers, heartbeats and fetches products; an admin token does everything.
 *
 * Invariant: a worker token acts only as the worker ids its name covers. The name is the id
 * itself (`worker:clinic-1:…` is `clinic-1` and nothing else) or a pattern with `*` for a fleet
 * (`worker:fleet-*:…`). Routes that act as a target declare which id they act as, and
 * {@link Auth.check} refuses any other: one check, not one per handler.
 */
import { timingSafeEqual } from 'node:crypto'
import { LockstepError, ValidationError } from '../core/errors.ts'
import type { IncomingHttpHeaders } from 'node:http'

export type Role = 'workbench' | 'viewer' | 'worker' | 'admin'

/** One configured token. */
export interface TokenEntry {
  token: string
  role: Role
  /**
   * Who the token speaks for: the owner of the orders it submits; for a worker token, the worker
   * ids it may act as (one id, or a pattern where `*` stands for any run of characters).
   */
  name: string
}

/** Who is calling; `public` on the routes that need no token (health, metrics, the document). */
export interface Caller {
  name: string
  role: Role | 'public'
}

/** The caller of a route that needs no token. */
export const publicCaller: Caller = { name: 'anonymous', role: 'public' }

/**
 * Every caller of a server without tokens: anyone who reaches it, its workers included, which is
 * why routes may tell it apart (by identity) from a caller with an admin token.
 */
export const openCaller: Caller = Object.freeze({ name: 'anonymous', role: 'admin' })

const roles: readonly Role[] = ['workbench', 'viewer', 'worker', 'admin']

/**
 * Reads tokens written as `role:name:token`, separated by commas or newlines (the form of
 * `LOCKSTEP_TOKENS` and of a tokens file), e.g. `admin:ops:s3cret,worker:fleet-*:w0rk`. A `#`
 * at the start of a line or after a space begins a comment to the end of the line (a token holds
 * no space, so no token loses a `#` of its own). `source` names the input in error paths.
 */
export function parseTokens(text: string, source = 'tokens'): TokenEntry[] {
  const out: TokenEntry[] = []
  const entries = text
    .split('\n')
    .map((line) => line.replace(/(^|\s)#.*$/, ''))
    .join('\n')
    .split(/[,\n]/)
    .map((e) => e.trim())
    .filter((e) => e !== '')
  entries.forEach((entry, i) => {
    const [role, name, ...rest] = entry.split(':')
    const token = rest.join(':')
    if (!roles.includes(role as Role) || name === undefined || name === '' || token.length < 8) {
      throw new ValidationError([
        {
          path: `${source}[${i}]`,
          message: `write role:name:token with a role of ${roles.join(', ')} and a token of 8 or more characters`,
        },
      ])
    }
    out.push({ role: role as Role, name, token })
  })
  return out
}

/** True when a worker id fits a token's name: equal, or matched where the name has `*`. */
export function coversId(pattern: string, id: string): boolean {
  if (!pattern.includes('*')) return pattern === id
  const re = pattern
    .split('*')
    .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
    .join('.*')
  return new RegExp(`^${re}$`).test(id)
}

/** Where a refusal is logged: the request's own logger (pino). */
export interface AuthLog {
  warn(details: Record<string, unknown>, message: string): void
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

  /**
   * The caller of a request, who must hold one of `allowed`; when the route acts as a target,
   * `actsAs` is its id and a worker token must cover it (an admin acts for any id). A refusal
   * of another worker's id is logged at warn level: it is a worker misconfigured or an attack.
   */
  check(
    headers: IncomingHttpHeaders,
    allowed: readonly Role[],
    actsAs?: { id: string; log: AuthLog },
  ): Caller {
    if (this.open) return openCaller
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
    if (actsAs !== undefined && entry.role !== 'admin' && !coversId(entry.name, actsAs.id)) {
      actsAs.log.warn(
        { token: entry.name, role: entry.role, id: actsAs.id },
        'a token tried to act as a worker id it does not cover',
      )
      throw new LockstepError(
        'FORBIDDEN',
        `the ${entry.role} token '${entry.name}' may not act as worker '${actsAs.id}'; it may act only as ${entry.name.includes('*') ? `ids matching '${entry.name}'` : `'${entry.name}'`}`,
      )
    }
    return { name: entry.name, role: entry.role }
  }
}
