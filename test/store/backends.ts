/**
 * The backends every store and service test runs against: SQLite files in a temp dir, and
 * PostgreSQL at LOCKSTEP_TEST_PG_URL with a schema of its own per test file. A PostgreSQL that
 * cannot be reached fails the tests; it is never skipped.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import pg from 'pg'
import { PostgresStore } from '../../src/store/postgres-store.ts'
import { SqliteStore } from '../../src/store/sqlite-store.ts'
import type { Store } from '../../src/store/store.ts'

export const pgUrl = process.env.LOCKSTEP_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test'

export interface Backend {
  name: 'sqlite' | 'postgres'
  /** The URL `openStore` takes for this backend's database. */
  url: string
  /** A new handle on the same database. */
  open(): Store
  /** Runs SQL on the database directly, for what no store method does (audits, sabotage). */
  query<T>(sql: string): Promise<T[]>
  /** Runs statements separated by `;` (a schema an older Lockstep made, say); answers nothing. */
  script(sql: string): Promise<void>
  /** Removes the database. */
  destroy(): Promise<void>
}

/** A fresh SQLite file. */
export function sqliteBackend(): Backend {
  const dir = mkdtempSync(join(tmpdir(), 'lockstep-test-'))
  const path = join(dir, 'lockstep.db')
  return {
    name: 'sqlite',
    url: path,
    open: () => new SqliteStore({ path, synchronous: 'normal' }),
    query<T>(sql: string): Promise<T[]> {
      const db = new Database(path)
      try {
        const stmt = db.prepare(sql)
        return Promise.resolve((stmt.reader ? stmt.all() : (stmt.run(), [])) as T[])
      } finally {
        db.close()
      }
    },
    script(sql: string): Promise<void> {
      const db = new Database(path)
      try {
        db.exec(sql)
      } finally {
        db.close()
      }
      return Promise.resolve()
    },
    destroy() {
      rmSync(dir, { recursive: true, force: true })
      return Promise.resolve()
    },
  }
}

let schemas = 0

/** A fresh PostgreSQL schema; `label` names the test file in it. */
export function postgresBackend(label: string): Backend {
  const schema = `t_${label.replace(/[^a-z0-9]/g, '_')}_${process.pid}_${schemas++}`
  const url = `${pgUrl}?schema=${schema}`
  const run = async <T>(sql: string): Promise<T[]> => {
    const client = new pg.Client({ connectionString: pgUrl, options: `-c search_path=${schema}` })
    await client.connect()
    try {
      return (await client.query(sql)).rows as T[]
    } finally {
      await client.end()
    }
  }
  return {
    name: 'postgres',
    url,
    open: () => new PostgresStore({ url: pgUrl, schema }),
    query: run,
    async script(sql: string) {
      // A multi-statement text goes as one simple query; the schema is made first, as a store would.
      await run(`CREATE SCHEMA IF NOT EXISTS ${schema}; ${sql}`)
    },
    async destroy() {
      await run(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
    },
  }
}

/** Both backends, made fresh for one test. */
export const backends: [string, (label: string) => Backend][] = [
  ['sqlite', () => sqliteBackend()],
  ['postgres', (label) => postgresBackend(label)],
]
