/**
 * The scale-out store: PostgreSQL, shared by every scheduler process that opens it. A commit is
 * one transaction of a fixed number of statements whatever its size: rows travel as arrays and
 * are spread with `unnest`.
 */
import type { Writable } from 'node:stream'
import pg from 'pg'
import type { Job } from '../core/model.ts'
import { isTransient } from './faults.ts'
import { specBody, specHash, SpecIds } from './job-specs.ts'
import { migrationsTable, pendingMigrations } from './migrations.ts'
import { PostgresHold } from './postgres-hold.ts'
import { clientSettings, defaultTimeouts } from './postgres-settings.ts'
import type { PostgresTimeouts } from './postgres-settings.ts'
import { readSnapshot, StoreReads } from './reads.ts'
import type { Query, Reads } from './reads.ts'
import { attemptColumns, jobColumns, orderColumns, binaryRows, toBin } from './rows.ts'
import type { Batch, HoldOptions, Snapshot, Store, StoreCapabilities } from './store.ts'

/** Options of a {@link PostgresStore}. */
export interface PostgresStoreOptions {
  /** e.g. `postgres://postgres@127.0.0.1:5432/lockstep` */
  url: string
  /** The schema that holds Lockstep's tables; created when missing. @default 'lockstep' */
  schema?: string
  /** Connections in the pool. @default 4 */
  poolSize?: number
  /** Timeouts and keepalive of every connection. @default {@link defaultTimeouts} */
  timeouts?: PostgresTimeouts
}

const INT8 = 20
const parseInt8 = (v: string): number => Number(v)
const types = {
  // BIGINT columns hold Unix milliseconds and sequence numbers, all well inside 2^53.
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8
      ? parseInt8
      : (pg.types.getTypeParser as (o: number, f?: string) => unknown)(
          oid,
          format,
        )) as typeof pg.types.getTypeParser,
}

/** Turns the `?` placeholders of the shared SQL into PostgreSQL's `$1, $2, …`. */
function numbered(sql: string): string {
  let i = 0
  return sql.replace(/\?/g, () => `$${++i}`)
}

/** The shared reads' {@link Query} on the pool, or on one connection inside a transaction. */
function queryOn(c: pg.Pool | pg.ClientBase): Query {
  return async <R>(sql: string, params: readonly unknown[]) =>
    (await c.query(numbered(sql), [...params])).rows as R[]
}

/** Column i of every row, as one array parameter. */
function column(rows: unknown[][], i: number): unknown[] {
  return rows.map((r) => r[i])
}

/** Prepared statements' names by their SQL: the writes are a fixed set, so this stays small. */
const statementNames = new Map<string, string>()

function statementName(sql: string): string {
  let name = statementNames.get(sql)
  if (name === undefined) statementNames.set(sql, (name = `lockstep_write_${statementNames.size}`))
  return name
}

/** `unnest($1::t1[], $2::t2[], …)` for the given element types. */
function unnest(typesOf: string[]): string {
  return `unnest(${typesOf.map((t, i) => `$${i + 1}::${t}[]`).join(', ')})`
}

const orderTypes = [
  'bytea',
  'text',
  'bytea',
  'int',
  'text',
  'text',
  'text',
  'text',
  'bigint',
  'bigint',
  'bigint',
  'text',
  'int',
  'text',
  'text',
]
const jobTypes = [
  'bytea',
  'bytea',
  'int',
  'text',
  'bigint',
  'text',
  'int',
  'int',
  'int',
  'text',
  'bigint',
]
const targetTypes = ['text', 'text', 'int', 'text', 'text', 'text', 'smallint', 'bigint', 'text']
const attemptTypes = [
  'bytea',
  'int',
  'text',
  'text',
  'text',
  'text',
  'int',
  'text',
  'text',
  'text',
  'text',
  'bigint',
]

export class PostgresStore implements Store {
  readonly capabilities: StoreCapabilities = { sharedAcrossProcesses: true }
  private readonly pool: pg.Pool
  readonly schema: string
  private readonly reads: Reads
  private readonly holding: PostgresHold

  constructor(options: PostgresStoreOptions) {
    this.schema = options.schema ?? 'lockstep'
    if (!/^[a-z_][a-z0-9_]{0,62}$/.test(this.schema)) {
      throw new Error(`schema '${this.schema}' must be a lower-case SQL identifier`)
    }
    const settings = clientSettings(options.timeouts ?? defaultTimeouts)
    this.pool = new pg.Pool({
      connectionString: options.url,
      // Statements sent together go out together: a commit costs one round trip for its rows.
      pipeline: true,
      max: options.poolSize ?? 4,
      options: `-c search_path=${this.schema}`,
      types,
      ...settings,
    })
    this.holding = new PostgresHold({
      schema: this.schema,
      client: {
        connectionString: options.url,
        // The server probes the holder's session too, and frees the lock within ~25 s of the
        // holder's host vanishing.
        options: `-c search_path=${this.schema} -c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3`,
        pipeline: true,
        types,
        ...settings,
      },
    })
    // An idle connection that dies is replaced by the pool; the error must not crash the process.
    this.pool.on('error', () => {})
    this.reads = new StoreReads(queryOn(this.pool))
  }

  private transaction<T>(fn: (c: pg.ClientBase) => Promise<T>): Promise<T> {
    return this.connected((client) => inTransaction(client, fn))
  }

  /** Runs `fn` on a connection of the pool. */
  private async connected<T>(fn: (c: pg.ClientBase) => Promise<T>): Promise<T> {
    const client = await this.pool.connect()
    let broken: Error | undefined
    try {
      return await fn(client)
    } catch (e) {
      // A connection that failed is not put back: the pool opens a new one.
      if (isTransient(e)) broken = e as Error
      throw e
    } finally {
      client.release(broken)
    }
  }

  /**
   * Takes the schema for this process: an advisory lock on a session of its own, on which every
   * commit then runs (see `postgres-hold.ts`).
   */
  async hold(options?: HoldOptions): Promise<void> {
    await this.holding.take(options)
  }

  async migrate(): Promise<number> {
    return this.transaction(async (c) => {
      // One migrator at a time across every process that shares this database.
      await c.query("SELECT pg_advisory_xact_lock(hashtext('lockstep_migrations'))")
      await c.query(`CREATE SCHEMA IF NOT EXISTS ${this.schema}`)
      await c.query(migrationsTable)
      const { rows } = await c.query<{ v: number | null }>(
        'SELECT max(version) AS v FROM lockstep_migrations',
      )
      const current = rows[0]?.v ?? 0
      for (const m of pendingMigrations(current, `schema ${this.schema}`)) {
        await c.query(m.sql('postgres'))
        await c.query(
          'INSERT INTO lockstep_migrations (version, name, applied_at) VALUES ($1, $2, $3)',
          [m.version, m.name, Date.now()],
        )
      }
      const after = await c.query<{ v: number }>(
        'SELECT max(version) AS v FROM lockstep_migrations',
      )
      return after.rows[0]!.v
    })
  }

  /**
   * One commit: BEGIN, the batch's statements and COMMIT sent together on a pipelined session,
   * one round trip in all, then every answer waited for. A statement that fails aborts the
   * transaction (its COMMIT only rolls back), and its error is the commit's.
   */
  async commit(batch: Batch): Promise<void> {
    const write = async (c: pg.ClientBase) => {
      const sent: Promise<unknown>[] = []
      let unsent: Error | undefined
      try {
        sent.push(c.query('BEGIN'))
        // A batch tried again is written only if its first try did not land.
        let landed = false
        if (batch.retried === true && batch.token !== undefined) {
          const { rows } = await c.query<{ token: string }>(
            'SELECT token FROM last_commit WHERE one = 1',
          )
          landed = rows[0]?.token === batch.token
        }
        const jobs = batch.orders.flatMap((o) => o.jobs)
        const bodies = landed ? [] : jobs.map(specBody)
        // Its spec ids first: the job rows name them.
        await this.resolveSpecs(c, bodies)
        // The rest leaves in one write, not one per statement: on loopback each write costs
        // a wake-up of the server's process.
        corked(c, () => {
          if (!landed) {
            if (batch.token !== undefined) {
              sent.push(
                c.query(
                  'INSERT INTO last_commit (one, token) VALUES (1, $1) ON CONFLICT (one) DO UPDATE SET token = excluded.token',
                  [batch.token],
                ),
              )
            }
            this.write(c, batch, jobs, bodies, sent)
          }
          sent.push(c.query('COMMIT'))
        })
      } catch (e) {
        unsent = e instanceof Error ? e : new Error(String(e))
      }
      // Every statement sent is waited for, so none fails unheard.
      const failed = (await Promise.allSettled(sent)).find((r) => r.status === 'rejected')
      const error = (failed?.reason as Error | undefined) ?? unsent
      if (error === undefined) return
      this.specIds.clear()
      await c.query('ROLLBACK').catch(() => {})
      throw error
    }
    if (!this.holding.wanted) return this.connected(write)
    await this.holding.run(async (c) => {
      try {
        await write(c)
      } catch (e) {
        if (isTransient(e)) this.holding.drop(e as Error)
        throw e
      }
    })
  }

  /**
   * Sends the batch's statements, in the order they must run, without waiting for each: on the
   * pipelined session they go out together and cost one round trip, not one each. Each is
   * added to `sent`; the caller waits for them all. `jobs` are the new orders' jobs, `bodies`
   * their specs' text, whose ids are resolved.
   */
  private write(
    c: pg.ClientBase,
    batch: Batch,
    jobs: readonly Job[],
    bodies: readonly string[],
    sent: Promise<unknown>[],
  ): void {
    {
      // One block, so that the statements read in the order they run.
      // `{rows}` in the SQL becomes `unnest($1::t1[], …)` over the given column types.
      // Named, so that each session parses and plans each statement once, not once a commit.
      const send = (text: string, values: unknown[]) =>
        sent.push(c.query({ name: statementName(text), text, values }))
      const q = (sql: string, rows: unknown[][], typesOf: string[]) => {
        if (rows.length === 0) return
        send(
          sql.replace('{rows}', unnest(typesOf)),
          typesOf.map((_, i) => column(rows, i)),
        )
      }
      q(
        `INSERT INTO packets (id, name, body, created_at, owner) SELECT * FROM {rows}`,
        batch.packets.map(binaryRows.packet),
        ['bytea', 'text', 'text', 'bigint', 'text'],
      )
      q(
        `INSERT INTO artifacts (id, project, body, created_at) SELECT * FROM {rows}`,
        batch.artifacts.map(binaryRows.artifact),
        ['bytea', 'text', 'text', 'bigint'],
      )
      q(
        `INSERT INTO orders (${orderColumns}) SELECT * FROM {rows}`,
        batch.orders.map((o) => binaryRows.order(o.stored)),
        orderTypes,
      )
      q(
        `INSERT INTO jobs (${jobColumns}) SELECT * FROM {rows}`,
        jobs.map((job, i) => binaryRows.job(job, this.specIds.get(bodies[i]!)!)),
        jobTypes,
      )
      q(
        `INSERT INTO locks (job_id, next_id, released) SELECT a, b, 0 FROM {rows} AS u(a, b)`,
        batch.orders.flatMap((o) => o.locks.map(binaryRows.lock)),
        ['bytea', 'bytea'],
      )
      q(
        `UPDATE orders SET state = u.state, started_at = u.started_at, ended_at = u.ended_at, reason = u.reason
         FROM {rows} AS u(id, state, started_at, ended_at, reason)
         WHERE orders.id = u.id`,
        batch.orderUpdates.map(binaryRows.orderUpdate),
        ['bytea', 'text', 'bigint', 'bigint', 'text'],
      )
      q(
        `UPDATE jobs SET state = u.state, attempt = u.attempt, reason = u.reason, retry_at = u.retry_at
         FROM {rows} AS u(id, state, attempt, reason, retry_at)
         WHERE jobs.id = u.id`,
        batch.jobUpdates.map(binaryRows.jobUpdate),
        ['bytea', 'text', 'int', 'text', 'bigint'],
      )
      q(
        `INSERT INTO target_fulfilments (${attemptColumns}) SELECT * FROM {rows}
         ON CONFLICT (job_id, attempt) DO UPDATE SET state = excluded.state,
           transitions = excluded.transitions, reason = excluded.reason,
           exit_code = excluded.exit_code, message = excluded.message, product = excluded.product,
           product_hash = excluded.product_hash, artefacts = excluded.artefacts`,
        batch.attempts.map(binaryRows.attempt),
        attemptTypes,
      )
      if (batch.released.length > 0) {
        send('UPDATE locks SET released = 1 WHERE job_id = ANY($1::bytea[])', [
          batch.released.map(toBin),
        ])
      }
      q(
        `INSERT INTO targets (id, kind, slots, labels, projects, url, live, updated_at, runs)
         SELECT * FROM {rows}
         ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, slots = excluded.slots,
           labels = excluded.labels, projects = excluded.projects, url = excluded.url,
           live = excluded.live, updated_at = excluded.updated_at, runs = excluded.runs`,
        batch.targets.map(binaryRows.target),
        targetTypes,
      )
      if (batch.cachesDropped.length > 0) {
        send('DELETE FROM products WHERE target_id = ANY($1::text[])', [batch.cachesDropped])
      }
      if (batch.targetsForgotten.length > 0) {
        send('DELETE FROM targets WHERE id = ANY($1::text[])', [batch.targetsForgotten])
      }
      q(
        // A product made again where a copy was kept takes the new copy's hash.
        `INSERT INTO products (product_id, target_id, hash) SELECT * FROM {rows}
         ON CONFLICT (product_id, target_id) DO UPDATE SET hash = excluded.hash`,
        batch.productsAdded.map(binaryRows.product),
        ['text', 'text', 'text'],
      )
      q(
        `DELETE FROM products p USING {rows} AS u(pid, tid)
         WHERE p.product_id = u.pid AND p.target_id = u.tid`,
        batch.productsRemoved.map(binaryRows.productKey),
        ['text', 'text'],
      )
      q(
        `INSERT INTO resources (key, holder) SELECT * FROM {rows}
         ON CONFLICT (key) DO UPDATE SET holder = excluded.holder`,
        batch.holders.map(binaryRows.holder),
        ['text', 'bytea'],
      )
      q(
        `INSERT INTO events (seq, at, type, order_id, job_id, body) SELECT * FROM {rows}`,
        batch.events.map(binaryRows.event),
        ['bigint', 'bigint', 'text', 'bytea', 'bytea', 'text'],
      )
    }
  }

  private readonly specIds = new SpecIds()

  /** Makes sure every body has a stored spec and a known id. */
  private async resolveSpecs(c: pg.ClientBase, bodies: string[]): Promise<void> {
    const missing = [...new Set(bodies.filter((b) => this.specIds.get(b) === undefined))]
    if (missing.length === 0) return
    const hashes = missing.map(specHash)
    await c.query(
      `INSERT INTO job_specs (hash, body) SELECT * FROM ${unnest(['text', 'text'])} ON CONFLICT (hash) DO NOTHING`,
      [hashes, missing],
    )
    const { rows } = await c.query<{ id: number; hash: string }>(
      'SELECT id, hash FROM job_specs WHERE hash = ANY($1::text[])',
      [hashes],
    )
    const byHash = new Map(rows.map((r) => [r.hash, r.id]))
    missing.forEach((body, i) => this.specIds.set(body, byHash.get(hashes[i]!)!))
  }

  async load(): Promise<Snapshot> {
    return this.transaction(async (c) => {
      await c.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ')
      return readSnapshot(queryOn(c))
    })
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

  /** Drops the schema and everything in it: for tests and teardown. */
  async dropSchema(): Promise<void> {
    await this.pool.query(`DROP SCHEMA IF EXISTS ${this.schema} CASCADE`)
  }

  private closed = false

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.holding.close()
    await this.pool.end()
  }
}

/**
 * Runs `fn` with the session's socket corked: the statements it sends leave in one write when it
 * ends. Each statement corks its own messages; the socket counts the corks.
 */
function corked(c: pg.ClientBase, fn: () => void): void {
  const stream = (c as unknown as { connection?: { stream?: Partial<Writable> } }).connection
    ?.stream
  stream?.cork?.()
  try {
    fn()
  } finally {
    stream?.uncork?.()
  }
}

/** Runs `fn` in one transaction on `client`; a failure rolls it back. */
async function inTransaction<T>(
  client: pg.ClientBase,
  fn: (c: pg.ClientBase) => Promise<T>,
): Promise<T> {
  try {
    await client.query('BEGIN')
    const out = await fn(client)
    await client.query('COMMIT')
    return out
  } catch (e) {
    await client.query('ROLLBACK').catch(() => {})
    throw e
  }
}
