/**
 * Opens the store a URL names: `postgres://…` (or `postgresql://…`, with an optional `?schema=`)
 * for PostgreSQL, anything else for an SQLite file (`sqlite:` in front is optional).
 */
import { PostgresStore } from './postgres-store.ts'
import { SqliteStore } from './sqlite-store.ts'
import type { Store } from './store.ts'

export function openStore(url: string): Store {
  if (/^postgres(ql)?:\/\//.test(url)) {
    const parsed = new URL(url)
    const schema = parsed.searchParams.get('schema') ?? undefined
    parsed.searchParams.delete('schema')
    return new PostgresStore({ url: parsed.toString(), schema })
  }
  return new SqliteStore({ path: url.replace(/^sqlite:/, '') })
}
