/**
 * How Lockstep talks to PostgreSQL when the network or the server misbehaves: every wait has an
 * end, and a dead peer is noticed. Each setting has a default and may be set in the database
 * URL's query, in the units libpq uses for the same name (see docs/operations.md).
 */
import { LockstepError } from '../core/errors.ts'

/** The timeouts and keepalive of a PostgreSQL store's connections. */
export interface PostgresTimeouts {
  /** How long opening a connection may take, in seconds (`connect_timeout`). @default 10 */
  connectTimeoutS: number
  /** The server cancels a statement running longer, in ms (`statement_timeout`). @default 60000 */
  statementTimeoutMs: number
  /**
   * The server ends a session idle inside a transaction this long, in ms
   * (`idle_in_transaction_session_timeout`): a scheduler that stalls mid-commit cannot hold
   * row locks for ever. @default 60000
   */
  idleInTransactionTimeoutMs: number
  /**
   * The client gives up on an answer after this long, in ms (`query_timeout`), and drops the
   * connection: the guard against a network that swallows packets, which no server-side
   * timeout sees. 0 turns it off. @default 70000
   */
  queryTimeoutMs: number
  /** TCP keepalive on every connection (`keepalives`, 1 or 0). @default true */
  keepAlive: boolean
  /** Idle seconds before the first keepalive probe (`keepalives_idle`). @default 10 */
  keepAliveIdleS: number
}

/** The defaults of {@link PostgresTimeouts}. */
export const defaultTimeouts: PostgresTimeouts = {
  connectTimeoutS: 10,
  statementTimeoutMs: 60_000,
  idleInTransactionTimeoutMs: 60_000,
  queryTimeoutMs: 70_000,
  keepAlive: true,
  keepAliveIdleS: 10,
}

/** URL query parameter → field, for the non-negative integer settings. */
const integerParams = {
  connect_timeout: 'connectTimeoutS',
  statement_timeout: 'statementTimeoutMs',
  idle_in_transaction_session_timeout: 'idleInTransactionTimeoutMs',
  query_timeout: 'queryTimeoutMs',
  keepalives_idle: 'keepAliveIdleS',
} as const

/** A PostgreSQL URL taken apart: the connection string, the schema and the timeouts. */
export interface PostgresUrl {
  /** The URL without Lockstep's own parameters. */
  url: string
  schema: string | undefined
  timeouts: PostgresTimeouts
}

/** Reads `?schema=` and the settings of {@link PostgresTimeouts} out of a `postgres://` URL. */
export function parsePostgresUrl(url: string): PostgresUrl {
  const parsed = new URL(url)
  const q = parsed.searchParams
  const schema = q.get('schema') ?? undefined
  q.delete('schema')
  const timeouts = { ...defaultTimeouts }
  for (const [param, field] of Object.entries(integerParams)) {
    const value = q.get(param)
    if (value === null) continue
    if (!/^\d{1,9}$/.test(value)) {
      throw new LockstepError(
        'VALIDATION_FAILED',
        `database URL: ${param} must be a whole number, found '${value}'`,
      )
    }
    timeouts[field] = Number(value)
    q.delete(param)
  }
  const keepalives = q.get('keepalives')
  if (keepalives !== null) {
    if (keepalives !== '0' && keepalives !== '1') {
      throw new LockstepError(
        'VALIDATION_FAILED',
        `database URL: keepalives must be 0 or 1, found '${keepalives}'`,
      )
    }
    timeouts.keepAlive = keepalives === '1'
    q.delete('keepalives')
  }
  return { url: parsed.toString(), schema, timeouts }
}

/** The node-postgres client settings for the given timeouts. */
export function clientSettings(t: PostgresTimeouts) {
  return {
    connectionTimeoutMillis: t.connectTimeoutS * 1000,
    statement_timeout: t.statementTimeoutMs,
    idle_in_transaction_session_timeout: t.idleInTransactionTimeoutMs,
    ...(t.queryTimeoutMs > 0 ? { query_timeout: t.queryTimeoutMs } : {}),
    keepAlive: t.keepAlive,
    keepAliveInitialDelayMillis: t.keepAliveIdleS * 1000,
  }
}
