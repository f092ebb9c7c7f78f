/**
 * Which store errors pass, and the PostgreSQL URL's timeouts: the two rules that decide whether
 * a scheduler rides out a fault or stops.
 */
import { describe, expect, it } from 'vitest'
import { LockstepError } from '../../src/core/errors.ts'
import { isTransient } from '../../src/store/faults.ts'
import { defaultTimeouts, parsePostgresUrl } from '../../src/store/postgres-settings.ts'

const coded = (code: string, message = 'x') => Object.assign(new Error(message), { code })

describe('isTransient', () => {
  it.each([
    ['the server refused the connection', coded('ECONNREFUSED'), true],
    ['the connection was reset', coded('ECONNRESET'), true],
    ['PostgreSQL is shutting down (57P01)', coded('57P01'), true],
    ['PostgreSQL cannot connect now (57P03)', coded('57P03'), true],
    ['a connection exception (08006)', coded('08006'), true],
    ['PostgreSQL disk full (53100)', coded('53100'), true],
    ['the statement timeout (57014)', coded('57014'), true],
    ['a serialization failure (40001)', coded('40001'), true],
    ['node-postgres: connection terminated', new Error('Connection terminated unexpectedly'), true],
    ['node-postgres: connect timeout', new Error('timeout exceeded when trying to connect'), true],
    ['SQLite busy', coded('SQLITE_BUSY'), true],
    ['SQLite disk full', coded('SQLITE_FULL'), true],
    ['SQLite I/O error while writing', coded('SQLITE_IOERR_WRITE'), true],
    ['the hold lost', new LockstepError('STORE_UNAVAILABLE', 'x'), true],
    ['a unique violation (23505)', coded('23505'), false],
    ['a syntax error (42601)', coded('42601'), false],
    ['SQLite constraint', coded('SQLITE_CONSTRAINT_PRIMARYKEY'), false],
    ['SQLite corrupt', coded('SQLITE_CORRUPT'), false],
    ['another holder', new LockstepError('STORE_HELD', 'x'), false],
    ['a plain bug', new TypeError('x is undefined'), false],
  ])('%s → %s', (_what, error, transient) => {
    expect(isTransient(error)).toBe(transient)
  })
})

describe('parsePostgresUrl', () => {
  it('takes the schema and timeouts out of the URL and keeps the rest', () => {
    const p = parsePostgresUrl(
      'postgres://u@h:5432/db?schema=s1&connect_timeout=5&statement_timeout=30000&idle_in_transaction_session_timeout=9000&query_timeout=0&keepalives=0&keepalives_idle=3&sslmode=disable',
    )
    expect(p.url).toBe('postgres://u@h:5432/db?sslmode=disable')
    expect(p.schema).toBe('s1')
    expect(p.timeouts).toEqual({
      connectTimeoutS: 5,
      statementTimeoutMs: 30000,
      idleInTransactionTimeoutMs: 9000,
      queryTimeoutMs: 0,
      keepAlive: false,
      keepAliveIdleS: 3,
    })
  })

  it('uses the defaults for what the URL does not say', () => {
    expect(parsePostgresUrl('postgres://h/db').timeouts).toEqual(defaultTimeouts)
  })

  it.each([
    ['connect_timeout=soon', 'connect_timeout must be a whole number'],
    ['statement_timeout=-1', 'statement_timeout must be a whole number'],
    ['keepalives=yes', 'keepalives must be 0 or 1'],
  ])('refuses %s', (query, message) => {
    expect(() => parsePostgresUrl(`postgres://h/db?${query}`)).toThrow(message)
  })
})
