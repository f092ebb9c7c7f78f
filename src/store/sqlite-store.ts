/**
 * The embedded store: one SQLite file in WAL mode, written by one process. Every commit is one
 * transaction of prepared statements; with `synchronous = FULL` a resolved commit survives a
 * power cut, with `NORMAL` it survives a crash of the process.
 */
import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import Database from 'better-sqlite3'
import { specBody, specHash, SpecIds, specMap } from './job-specs.ts'
import { migrationsTable, pendingMigrations } from './migrations.ts'
import { assembleSnapshot, readEach, snapshotSql, StoreReads } from './reads.ts'
import type { Reads, SnapshotRows } from './reads.ts'
import {
  attemptColumns,
  attemptValues,
  decodeJobArray,
  hexToId,
  jobArrayColumns,
  jobColumns,
  jobValues,
  orderColumns,
  orderValues,
  rowValues,
  toBin,
} from './rows.ts'
import { SqliteHold } from './sqlite-hold.ts'
import type { Batch, Snapshot, Store, StoreCapabilities } from './store.ts'

/** Options of a {@link SqliteStore}. */
export interface SqliteStoreOptions {
  /** The database file; `:memory:` for a store that lives as long as the process. */
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

/**
 * A statement over many rows at once: `{rows}` in the SQL becomes `(?, ?, …), (?, ?, …)`. Rows go
 * in chunks of up to 64 per statement, which costs far less than one statement per row.
 */
class Bulk {
  private readonly statements = new Map<number, Database.Statement>()
  private readonly db: Database.Database
  private readonly sql: string
  private readonly width: number

  constructor(db: Database.Database, sql: string, width: number) {
    this.db = db
    this.sql = sql
    this.width = width
  }

  run(rows: readonly unknown[][]): void {
    for (let i = 0; i < rows.length; i += 64) {
      const chunk = rows.slice(i, i + 64)
      this.statement(chunk.length).run(...chunk.flat())
    }
  }

  private statement(n: number): Database.Statement {
    let st = this.statements.get(n)
    if (st === undefined) {
      const row = `(${placeholders(this.width)})`
      st = this.db.prepare(
        this.sql.replace('{rows}', Array.from({ length: n }, () => row).join(', ')),
      )
      this.statements.set(n, st)
    }
    return st
  }
}

const placeholders = (n: number) => Array.from({ length: n }, () => '?').join(', ')

export class SqliteStore implements Store {
  readonly capabilities: StoreCapabilities = { sharedAcrossProcesses: false }
  private readonly db: Database.Database
  private readonly path: string
  private readonly hold_: SqliteHold | undefined
  private statements: ReturnType<SqliteStore['prepare']> | undefined
  /** Read statements by their SQL: the reads are a fixed set, so this stays small. */
  private readonly readStatements = new Map<string, Database.Statement>()
  private readonly reads: Reads = new StoreReads(<R>(sql: string, params: readonly unknown[]) =>
    settle(() => this.readStatement(sql).all(...params) as R[]),
  )

  constructor(options: SqliteStoreOptions) {
    this.path = options.path
    if (options.path !== ':memory:') mkdirSync(dirname(options.path), { recursive: true })
    this.db = new Database(options.path)
    this.db.pragma('journal_mode = WAL')
    this.db.pragma(`synchronous = ${options.synchronous ?? 'full'}`)
    this.db.pragma(`busy_timeout = ${options.busyTimeoutMs ?? 1000}`)
    this.hold_ = options.path === ':memory:' ? undefined : new SqliteHold(options.path)
    this.db.pragma('foreign_keys = OFF')
  }

  /** A `:memory:` store is this handle's alone already: nothing to take. */
  hold(): Promise<void> {
    return settle(() => this.hold_?.take())
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

  private prepare() {
    const db = this.db
    return {
      packet: db.prepare(
        'INSERT INTO packets (id, name, body, created_at, owner) VALUES (?, ?, ?, ?, ?)',
      ),
      artifact: db.prepare(
        'INSERT INTO artifacts (id, project, body, created_at) VALUES (?, ?, ?, ?)',
      ),
      order: db.prepare(`INSERT INTO orders (${orderColumns}) VALUES (${placeholders(15)})`),
      jobs: new Bulk(db, `INSERT INTO jobs (${jobColumns}) VALUES {rows}`, 11),
      locks: new Bulk(
        db,
        'INSERT INTO locks (job_id, next_id, released) SELECT column1, column2, 0 FROM (VALUES {rows})',
        2,
      ),
      attempts: new Bulk(
        db,
        `INSERT INTO target_fulfilments (${attemptColumns}) SELECT * FROM (VALUES {rows}) WHERE true
         ON CONFLICT (job_id, attempt) DO UPDATE SET state = excluded.state,
           transitions = excluded.transitions, reason = excluded.reason,
           exit_code = excluded.exit_code, message = excluded.message, product = excluded.product,
           product_hash = excluded.product_hash, artefacts = excluded.artefacts`,
        12,
      ),
      jobUpdates: new Bulk(
        db,
        `UPDATE jobs SET state = u.column2, attempt = u.column3, reason = u.column4,
           retry_at = u.column5
         FROM (VALUES {rows}) AS u WHERE jobs.id = u.column1`,
        5,
      ),
      productsAdd: new Bulk(
        db,
        // A product made again where a copy was kept takes the new copy's hash.
        `INSERT INTO products (product_id, target_id, hash) VALUES {rows}
         ON CONFLICT (product_id, target_id) DO UPDATE SET hash = excluded.hash`,
        3,
      ),
      events: new Bulk(
        db,
        'INSERT INTO events (seq, at, type, order_id, job_id, body) VALUES {rows}',
        6,
      ),
      specInsert: db.prepare(
        'INSERT INTO job_specs (hash, body) VALUES (?, ?) ON CONFLICT (hash) DO NOTHING',
      ),
      specId: db.prepare('SELECT id FROM job_specs WHERE hash = ?').pluck(),
      // Values come id first, as for PostgreSQL's unnest.
      orderUpdate: db.prepare(
        `UPDATE orders SET state = u.state, started_at = u.started_at, ended_at = u.ended_at,
           reason = u.reason
         FROM (SELECT ? AS id, ? AS state, ? AS started_at, ? AS ended_at, ? AS reason) AS u
         WHERE orders.id = u.id`,
      ),
      release: new Bulk(db, 'UPDATE locks SET released = 1 WHERE job_id IN (VALUES {rows})', 1),
      target: db.prepare(
        `INSERT INTO targets (id, kind, slots, labels, projects, url, live, updated_at, runs)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, slots = excluded.slots,
           labels = excluded.labels, projects = excluded.projects, url = excluded.url,
           live = excluded.live, updated_at = excluded.updated_at, runs = excluded.runs`,
      ),
      productRemove: db.prepare('DELETE FROM products WHERE product_id = ? AND target_id = ?'),
      cacheDrop: db.prepare('DELETE FROM products WHERE target_id = ?'),
      targetForget: db.prepare('DELETE FROM targets WHERE id = ?'),
      holderSet: db.prepare(
        'INSERT INTO resources (key, holder) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET holder = excluded.holder',
      ),
      lastToken: db.prepare('SELECT token FROM last_commit WHERE one = 1').pluck(),
      tokenSet: db.prepare(
        'INSERT INTO last_commit (one, token) VALUES (1, ?) ON CONFLICT (one) DO UPDATE SET token = excluded.token',
      ),
    }
  }

  commit(batch: Batch): Promise<void> {
    return settle(() => {
      try {
        this.write(batch)
      } catch (e) {
        this.specIds.clear()
        throw e
      }
    })
  }

  private write(batch: Batch): void {
    const s = (this.statements ??= this.prepare())
    const each = <T>(statement: Database.Statement, rows: T[], values: (row: T) => unknown[]) => {
      for (const row of rows) statement.run(...values(row))
    }
    this.db.transaction(() => {
      // A batch tried again is written only if its first try did not land.
      if (batch.retried === true && s.lastToken.get() === batch.token) return
      if (batch.token !== undefined) s.tokenSet.run(batch.token)
      each(s.packet, batch.packets, rowValues.packet)
      each(s.artifact, batch.artifacts, rowValues.artifact)
      for (const o of batch.orders) {
        s.order.run(...orderValues(o.stored))
        s.jobs.run(o.jobs.map((job) => jobValues(job, this.specId(specBody(job)))))
        s.locks.run(o.locks.map(rowValues.lock))
      }
      each(s.orderUpdate, batch.orderUpdates, rowValues.orderUpdate)
      s.jobUpdates.run(batch.jobUpdates.map(rowValues.jobUpdate))
      s.attempts.run(batch.attempts.map(attemptValues))
      s.release.run(batch.released.map((id) => [toBin(id)]))
      each(s.target, batch.targets, rowValues.target)
      for (const id of batch.cachesDropped) s.cacheDrop.run(id)
      for (const id of batch.targetsForgotten) s.targetForget.run(id)
      s.productsAdd.run(batch.productsAdded.map(rowValues.product))
      each(s.productRemove, batch.productsRemoved, rowValues.productKey)
      each(s.holderSet, batch.holders, rowValues.holder)
      s.events.run(batch.events.map(rowValues.event))
    })()
  }

  private readonly specIds = new SpecIds()

  /** The id of a spec, stored on first use. */
  private specId(body: string): number {
    let id = this.specIds.get(body)
    if (id === undefined) {
      const s = this.statements!
      const hash = specHash(body)
      s.specInsert.run(hash, body)
      id = Number(s.specId.get(hash))
      this.specIds.set(body, id)
    }
    return id
  }

  load(): Promise<Snapshot> {
    const db = this.db
    const read = db.transaction(() => {
      const rows = readEach(snapshotSql, (sql) => db.prepare(sql).all())
      const snapshot = assembleSnapshot({ ...rows, jobs: [], locks: [] } as SnapshotRows)
      // Jobs and locks are read order by order as arrays with hex ids: at a restart with
      // millions of jobs, a row object and two buffers per job cost more than the read.
      const specs = specMap(rows.specs as SnapshotRows['specs'])
      const jobs = db
        .prepare(`SELECT ${jobArrayColumns} FROM jobs WHERE order_id = ? ORDER BY idx`)
        .raw()
      const locks = db
        .prepare(
          `SELECT lower(hex(l.job_id)), lower(hex(l.next_id)), l.released FROM jobs j
           JOIN locks l ON l.job_id = j.id WHERE j.order_id = ?`,
        )
        .raw()
      for (const o of snapshot.orders) {
        const orderId = o.stored.order.id
        const id = toBin(orderId)
        o.jobs = (jobs.all(id) as unknown[][]).map((r) => decodeJobArray(r, specs, orderId))
        o.locks = (locks.all(id) as [string, string, number][]).map((r) => ({
          jobId: hexToId(r[0]),
          nextId: hexToId(r[1]),
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

  close(): Promise<void> {
    if (this.db.open) this.db.close()
    this.hold_?.release()
    return Promise.resolve()
  }
}
