/**
 * The embedded store: one SQLite file in WAL mode, written by one process. Every commit is one
 * transaction of prepared statements, run by a writer thread that owns its own connection
 * (`sqlite-writer.ts`); reads and loads use the store's connection, which WAL lets read beside
 * it. With `synchronous = FULL` a resolved commit survives a power cut, with `NORMAL` it
 * survives a crash of the process.
 */
import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import Database from 'better-sqlite3'
import type { Id } from '../core/ids.ts'
import { specBody, specHash, specMap } from './job-specs.ts'
import { migrationsTable, pendingMigrations } from './migrations.ts'
import { assembleSnapshot, readEach, snapshotSql, StoreReads } from './reads.ts'
import type { Reads, SnapshotRows } from './reads.ts'
import { decodeJobArray, idText, jobArrayColumns, rowCodec, toBin } from './rows.ts'
import { SqliteHold } from './sqlite-hold.ts'
import { S, SqliteWriter } from './sqlite-writer.ts'
import type { Step } from './sqlite-writer.ts'
import type { Batch, Snapshot, Store, StoreCapabilities } from './store.ts'

/** Rows as the writer thread is sent them: ids as text, which it binds as bytes. */
const textRows = rowCodec((id) => id)

/** Options of a {@link SqliteStore}. */
export interface SqliteStoreOptions {
  /** The database file. */
  path: string
  /** `full` survives power loss; `normal` survives a process crash. @default 'full' */
  synchronous?: 'full' | 'normal'
  /**
   * How long a statement waits for another connection's lock before SQLITE_BUSY. The store is
   * written by one process; a wait means a backup or an audit holds the file. SQLite waits
   * with the process blocked, so the wait is short: a commit that gives up is kept and tried
   * again (see `service/group-commit.ts`), and the process serves in between. @default 1000
   */
  busyTimeoutMs?: number
}

/** Runs a synchronous call and reports its outcome as a promise, throws included. */
function settle<T>(fn: () => T): Promise<T> {
  try {
    return Promise.resolve(fn())
  } catch (e) {
    return Promise.reject(e instanceof Error ? e : new Error(String(e)))
  }
}

export class SqliteStore implements Store {
  readonly capabilities: StoreCapabilities = { sharedAcrossProcesses: false }
  private readonly db: Database.Database
  private readonly path: string
  private readonly hold_: SqliteHold
  private readonly synchronous: 'full' | 'normal'
  private readonly busyTimeoutMs: number
  /** Started by the first commit, once the schema is there. */
  private writer: SqliteWriter | undefined
  /** Read statements by their SQL: the reads are a fixed set, so this stays small. */
  private readonly readStatements = new Map<string, Database.Statement>()
  private readonly reads: Reads = new StoreReads(<R>(sql: string, params: readonly unknown[]) =>
    settle(() => this.readStatement(sql).all(...params) as R[]),
  )

  constructor(options: SqliteStoreOptions) {
    if (options.path === ':memory:' || options.path === '') {
      throw new Error('an SQLite store needs a file: its writer thread opens it too')
    }
    this.path = options.path
    this.synchronous = options.synchronous ?? 'full'
    this.busyTimeoutMs = options.busyTimeoutMs ?? 1000
    mkdirSync(dirname(options.path), { recursive: true })
    this.db = new Database(options.path)
    this.db.pragma('journal_mode = WAL')
    this.db.pragma(`synchronous = ${this.synchronous}`)
    this.db.pragma(`busy_timeout = ${this.busyTimeoutMs}`)
    this.hold_ = new SqliteHold(options.path)
    this.db.pragma('foreign_keys = OFF')
  }

  hold(): Promise<void> {
    return settle(() => this.hold_.take())
  }

  migrate(): Promise<number> {
    this.db.exec(migrationsTable)
    // BEGIN IMMEDIATE takes the write lock first, so two processes migrating at once run one
    // after the other, and the second finds nothing left to do.
    const run = this.db.transaction(() => {
      const row = this.db.prepare('SELECT max(version) AS v FROM lockstep_migrations').get() as {
        v: number | null
      }
      const current = row.v ?? 0
      for (const m of pendingMigrations(current, this.path)) {
        this.db.exec(m.sql('sqlite'))
        this.db
          .prepare('INSERT INTO lockstep_migrations (version, name, applied_at) VALUES (?, ?, ?)')
          .run(m.version, m.name, Date.now())
      }
      return (
        this.db.prepare('SELECT max(version) AS v FROM lockstep_migrations').get() as { v: number }
      ).v
    })
    return settle(() => run.immediate())
  }

  /**
   * One commit: the batch's rows, built here, written in one transaction by the writer thread
   * (see `sqlite-writer.ts`), so the event loop serves on while SQLite writes and syncs.
   */
  commit(batch: Batch): Promise<void> {
    let steps: Step[]
    try {
      steps = this.steps(batch)
    } catch (e) {
      return Promise.reject(e instanceof Error ? e : new Error(String(e)))
    }
    this.writer ??= new SqliteWriter(this.path, this.synchronous, this.busyTimeoutMs)
    return this.writer.write({ token: batch.token, retried: batch.retried, steps })
  }

  /** The batch as statements and rows, in the order that keeps them consistent. */
  private steps(batch: Batch): Step[] {
    const steps: Step[] = []
    const add = <T>(statement: number, items: readonly T[], values: (item: T) => unknown[]) => {
      if (items.length === 0) return
      const flat: unknown[] = []
      for (const item of items) for (const v of values(item)) flat.push(v)
      steps.push([statement, flat])
    }
    const one = (id: Id) => [id]
    add(S.packet, batch.packets, textRows.packet)
    add(S.artifact, batch.artifacts, textRows.artifact)
    for (const o of batch.orders) {
      add(S.order, [o.stored], textRows.order)
      add(S.jobs, o.jobs, (job) => textRows.job(job, this.specKey(specBody(job))))
      add(S.locks, o.locks, textRows.lock)
    }
    add(S.orderUpdate, batch.orderUpdates, textRows.orderUpdate)
    add(S.jobUpdates, batch.jobUpdates, textRows.jobUpdate)
    add(S.attempts, batch.attempts, textRows.attempt)
    add(S.release, batch.released, one)
    add(S.target, batch.targets, textRows.target)
    add(S.cacheDrop, batch.cachesDropped, one)
    add(S.targetForget, batch.targetsForgotten, one)
    add(S.productsAdd, batch.productsAdded, textRows.product)
    add(S.productRemove, batch.productsRemoved, textRows.productKey)
    add(S.holderSet, batch.holders, textRows.holder)
    add(S.events, batch.events, textRows.event)
    return steps
  }

  /** What the writer stores a spec by: its text and digest (digests are kept, bounded). */
  private specKey(body: string): [string, string] {
    let hash = this.specHashes.get(body)
    if (hash === undefined) {
      if (this.specHashes.size >= 50_000) this.specHashes.clear()
      hash = specHash(body)
      this.specHashes.set(body, hash)
    }
    return [body, hash]
  }

  private readonly specHashes = new Map<string, string>()

  load(): Promise<Snapshot> {
    const db = this.db
    const read = db.transaction(() => {
      const rows = readEach(snapshotSql, (sql) => db.prepare(sql).all())
      const snapshot = assembleSnapshot({ ...rows, jobs: [], locks: [] } as SnapshotRows)
      // Jobs and locks are read order by order as arrays with ids as text: at a restart with
      // millions of jobs, a row object and two buffers per job cost more than the read.
      const specs = specMap(rows.specs as SnapshotRows['specs'])
      const jobs = db
        .prepare(`SELECT ${jobArrayColumns} FROM jobs WHERE order_id = ? ORDER BY idx`)
        .raw()
      const locks = db
        .prepare(
          `SELECT ${idText('l.job_id')}, ${idText('l.next_id')}, l.released FROM jobs j
           JOIN locks l ON l.job_id = j.id WHERE j.order_id = ?`,
        )
        .raw()
      for (const o of snapshot.orders) {
        const orderId = o.stored.order.id
        const id = toBin(orderId)
        o.jobs = (jobs.all(id) as unknown[][]).map((r) => decodeJobArray(r, specs, orderId))
        o.locks = (locks.all(id) as [Id, Id, number][]).map((r) => ({
          jobId: r[0],
          nextId: r[1],
          released: r[2] === 1,
        }))
      }
      return snapshot
    })
    return settle(read)
  }

  private readStatement(sql: string): Database.Statement {
    let st = this.readStatements.get(sql)
    if (st === undefined) {
      st = this.db.prepare(sql)
      this.readStatements.set(sql, st)
    }
    return st
  }

  order: Reads['order'] = (orderId) => this.reads.order(orderId)
  listOrders: Reads['listOrders'] = (limit, owner) => this.reads.listOrders(limit, owner)
  findOrders: Reads['findOrders'] = (query) => this.reads.findOrders(query)
  jobs: Reads['jobs'] = (orderId) => this.reads.jobs(orderId)
  job: Reads['job'] = (jobId) => this.reads.job(jobId)
  attempts: Reads['attempts'] = (jobId) => this.reads.attempts(jobId)
  attemptsOnTarget: Reads['attemptsOnTarget'] = (targetId, which) =>
    this.reads.attemptsOnTarget(targetId, which)
  artefacts: Reads['artefacts'] = (orderId) => this.reads.artefacts(orderId)
  locks: Reads['locks'] = (orderId) => this.reads.locks(orderId)
  events: Reads['events'] = (afterSeq, limit, orderId) =>
    this.reads.events(afterSeq, limit, orderId)

  async close(): Promise<void> {
    const writer = this.writer
    this.writer = undefined
    await writer?.close()
    if (this.db.open) this.db.close()
    this.hold_.release()
  }
}
