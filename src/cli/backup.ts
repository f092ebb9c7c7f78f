/**
 * `lockstep backup FILE`: a consistent copy of the embedded SQLite store, taken while the
 * scheduler runs (SQLite's online backup: readers and the scheduler's writes go on). A
 * PostgreSQL store is backed up with PostgreSQL's own tools; the command says which.
 */
import { existsSync } from 'node:fs'
import { resolve } from 'node:path'
import { parseArgs } from 'node:util'
import Database from 'better-sqlite3'
import { defaultDataDir, storeUrlFromEnvironment } from '../store/open-store.ts'
import type { Out } from './output.ts'

export async function backup(args: string[], out: Out): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      'data-dir': { type: 'string', default: process.env.LOCKSTEP_DATA_DIR ?? defaultDataDir },
    },
  })
  if (positionals.length !== 1) throw new Error('give the file to write: lockstep backup FILE')
  const to = resolve(positionals[0]!)
  const url = storeUrlFromEnvironment({ ...process.env, LOCKSTEP_DATA_DIR: values['data-dir'] })
  if (/^postgres(ql)?:\/\//.test(url)) {
    const schema = new URL(url).searchParams.get('schema') ?? 'public'
    throw new Error(
      `the store is PostgreSQL: back it up with pg_dump --schema=${schema} (docs/operations.md, Backup and restore)`,
    )
  }
  if (!existsSync(url)) throw new Error(`no store at ${url}: give --data-dir or LOCKSTEP_DATA_DIR`)
  if (existsSync(to)) throw new Error(`${to} exists: give a new file`)
  const db = new Database(url, { readonly: true, fileMustExist: true })
  try {
    const { totalPages } = await db.backup(to)
    out(`backed up ${url} to ${to} (${totalPages} pages)`)
  } finally {
    db.close()
  }
  return 0
}
