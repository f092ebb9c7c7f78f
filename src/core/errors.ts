/**
 * The one catalogue of Lockstep's error codes. Every error that crosses an API boundary carries
 * one of these codes and the HTTP status it maps to; `docs/errors.md` documents each of them.
 */
export const errorCatalogue = {
  VALIDATION_FAILED: { status: 400, summary: 'The input does not match its schema or rules.' },
  CYCLE_IN_GRAPH: { status: 400, summary: 'A packet’s jobs depend on each other in a cycle.' },
  LIMIT_EXCEEDED: { status: 400, summary: 'The input is larger than a configured limit allows.' },
  QUOTA_EXCEEDED: {
    status: 429,
    summary: 'The caller holds as many orders in flight or event streams as a limit allows.',
  },
  PAYLOAD_TOO_LARGE: {
    status: 413,
    summary: 'The request body is larger than the server accepts.',
  },
  UNSUPPORTED_MEDIA_TYPE: {
    status: 415,
    summary: 'The body’s Content-Type is not JSON or YAML.',
  },
  UNAUTHORIZED: { status: 401, summary: 'No token, or a token the server does not know.' },
  FORBIDDEN: { status: 403, summary: 'The token’s role or owner may not do this.' },
  CAPABILITY_INVALID: {
    status: 401,
    summary: 'A peer’s capability is malformed, or not signed by this scheduler’s key.',
  },
  CAPABILITY_EXPIRED: { status: 401, summary: 'A peer’s capability has expired.' },
  CAPABILITY_WRONG_PRODUCT: {
    status: 403,
    summary: 'A peer’s capability is for another product than the one it asks for.',
  },
  NOT_FOUND: { status: 404, summary: 'No such route.' },
  HOST_NOT_ALLOWED: {
    status: 421,
    summary: 'The Host header names another server than this one (DNS rebinding defence).',
  },
  ORDER_NOT_FOUND: { status: 404, summary: 'No order has this id.' },
  JOB_NOT_FOUND: { status: 404, summary: 'No job has this id.' },
  PACKET_NOT_FOUND: { status: 404, summary: 'No packet has this id or name.' },
  TARGET_NOT_FOUND: {
    status: 404,
    summary: 'No target is registered with this id, or it was lost.',
  },
  TARGET_LIVE: {
    status: 409,
    summary: 'The target is live; only a target that left or was lost can be forgotten.',
  },
  PRODUCT_NOT_FOUND: { status: 404, summary: 'No live target holds this product.' },
  PRODUCT_CORRUPT: {
    status: 502,
    summary: 'A holder served a product whose content hash is not the one recorded for it.',
  },
  NO_WORKER_FOR_PROJECT: {
    status: 422,
    summary: 'No worker holds the artifact’s project data, so it cannot be bound.',
  },
  SITES_OFFLINE: {
    status: 422,
    summary: 'Workers that hold the artifact’s project data are offline; the order names them.',
  },
  STALE_ATTEMPT: {
    status: 409,
    summary: 'A result for an attempt that is no longer the job’s current attempt.',
  },
  ALREADY_FINAL: { status: 409, summary: 'The order or job has already ended.' },
  DOWNLOAD_DISABLED: { status: 403, summary: 'This server does not allow downloading products.' },
  SCHEMA_TOO_NEW: {
    status: 500,
    summary: 'The database was migrated by a newer Lockstep than this one.',
  },
  UNAVAILABLE: {
    status: 503,
    summary: 'The server is starting or stopping, or a client cannot reach it.',
  },
  STORE_UNAVAILABLE: {
    status: 503,
    summary:
      'The database cannot be written now (unreachable, restarting, disk full); retry after the Retry-After header’s seconds.',
  },
  STORE_HELD: {
    status: 409,
    summary: 'Another scheduler process holds this store; the message names its pid and host.',
  },
  INTERNAL: { status: 500, summary: 'An internal error; the log has the details under its id.' },
} as const satisfies Record<string, { status: number; summary: string }>

/** A code from {@link errorCatalogue}. */
export type ErrorCode = keyof typeof errorCatalogue

/** One problem found in user input, at a path such as `steps[2].distribution`. */
export interface Issue {
  /** Where the problem is, e.g. `jobs[3].after[0]`; empty for the input as a whole. */
  path: string
  /** What is wrong, in words a user can act on. */
  message: string
}

/** The base of every error Lockstep raises on purpose. */
export class LockstepError extends Error {
  readonly code: ErrorCode
  readonly status: number
  constructor(code: ErrorCode, message: string) {
    super(message)
    this.name = 'LockstepError'
    this.code = code
    this.status = errorCatalogue[code].status
  }
}

/** STORE_UNAVAILABLE, with when to try again: the answer's `Retry-After` header. */
export class StoreUnavailableError extends LockstepError {
  /** Seconds until the scheduler tries the database again; at least 1. */
  readonly retryAfterS: number
  constructor(message: string, retryAfterS = 1) {
    super('STORE_UNAVAILABLE', message)
    this.name = 'StoreUnavailableError'
    this.retryAfterS = Math.max(1, Math.ceil(retryAfterS))
  }
}

/** Bad input: one or more {@link Issue}s, each naming a path. */
export class ValidationError extends LockstepError {
  readonly issues: readonly Issue[]
  constructor(issues: readonly Issue[], code: ErrorCode = 'VALIDATION_FAILED') {
    super(code, issues.map(formatIssue).join('\n'))
    this.name = 'ValidationError'
    this.issues = issues
  }
}

/**
 * An artifact's order refused because sites that hold its project's data are offline (or fewer
 * are live than its `minSites`). `waitMs` is how long the order asked to wait for them.
 */
export class SitesOfflineError extends LockstepError {
  readonly project: string
  readonly live: readonly string[]
  readonly offline: readonly string[]
  readonly waitMs: number
  constructor(
    project: string,
    live: readonly string[],
    offline: readonly string[],
    minSites: number | undefined,
    waitMs: number,
  ) {
    const all = live.length + offline.length
    super(
      'SITES_OFFLINE',
      minSites === undefined
        ? `${offline.length} of the ${all} sites that hold project '${project}' are offline: ${offline.join(', ')}. ` +
            `Order again when they are back, with waitForSitesMs to wait for them, or with minSites to run over the ${live.length} live ones`
        : `${live.length} of the ${all} sites that hold project '${project}' are live, fewer than minSites ${minSites}` +
            (offline.length === 0 ? '' : `; offline: ${offline.join(', ')}`),
    )
    this.name = 'SitesOfflineError'
    this.project = project
    this.live = live
    this.offline = offline
    this.waitMs = waitMs
  }
}

/** A packet whose jobs wait on each other in a loop; `cycle` names them, first repeated last. */
export class CycleError extends ValidationError {
  readonly cycle: readonly string[]
  constructor(path: string, cycle: readonly string[]) {
    super([{ path, message: `cycle: ${cycle.join(' → ')}` }], 'CYCLE_IN_GRAPH')
    this.name = 'CycleError'
    this.cycle = cycle
  }
}

/** Renders an issue as `path: message`, or the message alone when it concerns the whole input. */
export function formatIssue(issue: Issue): string {
  return issue.path === '' ? issue.message : `${issue.path}: ${issue.message}`
}

/** Renders a path of keys and indexes the way users write it: `steps[2].distribution`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = ''
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`
    else out += out === '' ? String(key) : `.${String(key)}`
  }
  return out
}

/** Joins a prefix path and a child path: `joinPath('jobs[2]', 'after[0]')` is `jobs[2].after[0]`. */
export function joinPath(prefix: string, child: string): string {
  if (prefix === '') return child
  if (child === '') return prefix
  return child.startsWith('[') ? prefix + child : `${prefix}.${child}`
}
