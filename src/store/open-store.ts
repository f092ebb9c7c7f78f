/**
 * Opens the store a URL names: `postgres://…` (or `postgresql://…`, with an optional `?schema=`
 * and the timeouts of `postgres-settings.ts`) for PostgreSQL, anything else for an SQLite file (`sqlite:` in front is optional).
 */
import { join } from 'node:path'
import { parsePostgresUrl } from './postgres-settings.ts'
import { PostgresStore } from './postgres-store.ts'
import { SqliteStore } from './sqlite-store.ts'
import type { Store } from './store.ts'

/** Where Lockstep keeps its SQLite database when nothing else is said. */
export const defaultDataDir = '.lockstep'

export function openStore(url: string): Store {
  if (/^postgres(ql)?:\/\//.test(url)) {
    return new PostgresStore(parsePostgresUrl(url))
  }
  return new SqliteStore({ path: url.replace(/^sqlite:/, '') })
}

/**
 * The store the environment asks for: `LOCKSTEP_DATABASE_URL` when set (PostgreSQL or an SQLite
 * path), otherwise SQLite at `$LOCKSTEP_DATA_DIR/lockstep.db` (default `./.lockstep`).
 */
export function storeUrlFromEnvironment(env: Record<string, string | undefined>): string {
  const url = env.LOCKSTEP_DATABASE_URL
  if (url !== undefined && url !== '') return url
  return join(env.LOCKSTEP_DATA_DIR ?? defaultDataDir, 'lockstep.db')
}
