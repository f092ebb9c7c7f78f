/**
 * One scheduler per SQLite file. The hold is an exclusive lock on a small SQLite database beside
 * the store (`<db>.lock`), taken with `BEGIN EXCLUSIVE` and kept open for the life of the
 * process. SQLite's locks are the operating system's (POSIX advisory locks on the file), so the
 * kernel lets go the moment the holder dies, SIGKILL included: a stale lock cannot block a
 * restart, and no pid is ever guessed alive or dead. Who holds it is written beside it
 * (`<db>.holder`, JSON), only to say so to a process that is refused.
 *
 * Invariant: at most one open handle, in any process on the machine, holds a given file.
 */
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import Database from 'better-sqlite3'
import { LockstepError } from '../core/errors.ts'
import type { StoreHolder } from './store.ts'

/** The sentence that names a holder, shared by both backends. */
export function heldMessage(where: string, holder: StoreHolder | undefined): string {
  const who =
    holder === undefined
      ? 'another scheduler process'
      : `process ${holder.pid} on ${holder.host} since ${new Date(holder.since).toISOString()}`
  return `${where} is held by ${who}: one scheduler per store; stop that one first`
}

export class SqliteHold {
  private readonly path: string
  private lock: Database.Database | undefined

  /** `path`: the store's database file. */
  constructor(path: string) {
    this.path = path
  }

  get held(): boolean {
    return this.lock !== undefined
  }

  /** Takes the hold, or throws STORE_HELD naming the holder. */
  take(): void {
    if (this.lock !== undefined) return
    const db = new Database(`${this.path}.lock`)
    try {
      // Refused at once rather than after a wait: the holder keeps it for its whole life.
      db.pragma('busy_timeout = 0')
      db.exec('BEGIN EXCLUSIVE')
    } catch (e) {
      db.close()
      if ((e as { code?: unknown }).code === 'SQLITE_BUSY') {
        throw new LockstepError('STORE_HELD', heldMessage(this.path, this.holder()))
      }
      throw e
    }
    this.lock = db
    const me: StoreHolder = { pid: process.pid, host: hostname(), since: Date.now() }
    const file = `${this.path}.holder`
    writeFileSync(`${file}.${process.pid}`, JSON.stringify(me) + '\n')
    renameSync(`${file}.${process.pid}`, file)
  }

  /** Lets go; the holder file goes with it. */
  release(): void {
    if (this.lock === undefined) return
    rmSync(`${this.path}.holder`, { force: true })
    this.lock.close()
    this.lock = undefined
  }

  /** The holder the file names, if it can be read. */
  private holder(): StoreHolder | undefined {
    try {
      const h = JSON.parse(readFileSync(`${this.path}.holder`, 'utf8')) as StoreHolder
      return typeof h.pid === 'number' && typeof h.host === 'string' ? h : undefined
    } catch {
      return undefined
    }
  }
}
