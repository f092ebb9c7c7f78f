/**
 * The scale-out store: PostgreSQL, shared by every scheduler process that opens it. A commit is
 * one transaction of a fixed number of statements whatever its size: rows travel as arrays and
 * are spread with `unnest`.
 */
import pg from 'pg'
import { isTransient } from './faults.ts'
import { specBody, specHash, SpecIds } from './job-specs.ts'
import { migrationsTable, pendingMigrations } from './migrations.ts'
import { PostgresHold } from './postgres-hold.ts'
import { clientSettings, defaultTimeouts } from './postgres-settings.ts'
import type { PostgresTimeouts } from './postgres-settings.ts'
import { corked, sendBatch, unnest } from './postgres-writes.ts'
import { readSnapshot, StoreReads } from './reads.ts'
import type { Query, Reads } from './reads.ts'
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
            sendBatch(
              c,
              batch,
              jobs,
              bodies.map((b) => this.specIds.get(b)!),
              sent,
            )
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
