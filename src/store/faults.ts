/**
 * Which store errors pass. A transient fault (the database unreachable or restarting, a disk
 * full, a lock held too long) leaves the store as it was before the failed call, and the same
 * call may succeed later: the service keeps its batch and tries again. Anything else (a
 * constraint broken, SQL the database refuses) would fail again the same way: the service
 * stops, and a restart from the store is the safe way on.
 *
 * Invariant: a fault is called transient only when the transaction it hit did not commit, or
 * may have committed and the retry can tell (see `Batch.token`); never for a write that could
 * have landed in part.
 */
import { LockstepError, StoreUnavailableError } from '../core/errors.ts'

/** Socket and DNS errors Node reports: the database did not answer. */
const networkCodes = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'ENOTFOUND',
  'EAI_AGAIN',
])

/**
 * PostgreSQL SQLSTATE classes and codes that pass: 08 connection exception, 53 insufficient
 * resources (disk full, out of memory, too many connections), 57P01–57P05 the server shutting
 * down or starting or the session ended by a timeout, 57014 a statement cancelled (the
 * statement timeout), 40001/40P01 a serialization failure or deadlock, 25P03 the
 * idle-in-transaction timeout, 58030 an I/O error.
 */
const pgClasses = ['08', '53']
const pgCodes = new Set([
  '57P01',
  '57P02',
  '57P03',
  '57P05',
  '57014',
  '40001',
  '40P01',
  '25P03',
  '58030',
])

/** Messages of node-postgres's own errors, which carry no code. */
const pgMessages =
  /Connection terminated|connection timeout|timeout exceeded when trying to connect|not queryable|Query read timeout|Connection ended/i

/**
 * SQLite result codes that pass (better-sqlite3 names them, extended codes included): the
 * database busy or locked by another connection, the disk full, an I/O error, no memory.
 */
const sqlitePrefixes = [
  'SQLITE_BUSY',
  'SQLITE_LOCKED',
  'SQLITE_FULL',
  'SQLITE_IOERR',
  'SQLITE_NOMEM',
  'SQLITE_PROTOCOL',
  'SQLITE_CANTOPEN',
]

/** Whether a store call that threw `error` may succeed if made again later. */
export function isTransient(error: unknown): boolean {
  if (error instanceof LockstepError) return error.code === 'STORE_UNAVAILABLE'
  if (typeof error !== 'object' || error === null) return false
  const code = (error as { code?: unknown }).code
  if (typeof code === 'string') {
    if (networkCodes.has(code)) return true
    if (code.startsWith('SQLITE_')) return sqlitePrefixes.some((p) => code.startsWith(p))
    if (/^[0-9A-Z]{5}$/.test(code)) return pgClasses.includes(code.slice(0, 2)) || pgCodes.has(code)
  }
  const message = (error as { message?: unknown }).message
  return typeof message === 'string' && pgMessages.test(message)
}

/** A short account of a store fault for logs and answers: its code and message. */
export function describeFault(error: unknown): string {
  if (!(error instanceof Error)) return String(error)
  const code = (error as { code?: unknown }).code
  return typeof code === 'string' && !error.message.includes(code)
    ? `${code}: ${error.message}`
    : error.message
}

/**
 * The error a caller gets while the store is failing: STORE_UNAVAILABLE (503), with the fault
 * that caused it in the message and the seconds until the next try.
 */
export function storeUnavailable(cause: unknown, retryAfterS = 1): StoreUnavailableError {
  return new StoreUnavailableError(
    `the database cannot be written now (${describeFault(cause)}); the scheduler retries and carries on when it returns`,
    retryAfterS,
  )
}

/**
 * The store with every call's transient fault answered as STORE_UNAVAILABLE: what the read model
 * reads through, so a read the database cannot serve now is a 503 with Retry-After, not a 500.
 */
export function guardedReads<S extends object>(store: S): S {
  return new Proxy(store, {
    get(target, key, receiver) {
      const value: unknown = Reflect.get(target, key, receiver)
      if (typeof value !== 'function') return value
      return (...args: unknown[]) => {
        const out: unknown = (value as (...a: unknown[]) => unknown).apply(target, args)
        return out instanceof Promise
          ? out.catch((e: unknown) => {
              throw isTransient(e) ? storeUnavailable(e) : e
            })
          : out
      }
    },
  })
}
