/**
 * The SQLite store's writer, seen from the scheduler's thread: the statements a commit may run,
 * and a worker thread (`sqlite-writer-thread.js`) that owns the writing connection. A commit is
 * one message of rows; the thread answers once the transaction is committed, so the event loop
 * serves heartbeats and submissions while SQLite writes and syncs. Commits never overlap (the
 * group commit sends one at a time) and the thread runs them in the order they come.
 *
 * A rolled-back commit comes back as an Error with SQLite's `code`, so `faults.ts` tells a busy
 * or full database from one that cannot be written at all.
 */
import { Worker } from 'node:worker_threads'
import { attemptColumns, jobColumns, orderColumns } from './rows.ts'

/**
 * One statement and its rows: `[statement index, values]`, the rows' values one after another
 * (one flat array per statement, not an array per row). Ids are sent as text: the thread turns
 * the columns its statement names in `ids` into 16 bytes.
 */
export type Step = [number, unknown[]]

/** The statements, by the index a {@link Step} names. */
export const S = {
  packet: 0,
  artifact: 1,
  order: 2,
  jobs: 3,
  locks: 4,
  orderUpdate: 5,
  jobUpdates: 6,
  attempts: 7,
  release: 8,
  target: 9,
  cacheDrop: 10,
  targetForget: 11,
  productsAdd: 12,
  productRemove: 13,
  holderSet: 14,
  events: 15,
} as const

/**
 * The SQL of each statement, in the order of {@link S}. `width`: the values of one row. `bulk`:
 * a statement over many rows at once, its `{rows}` becoming `(?, …), (?, …)`, up to 64 rows a
 * statement, which costs far less than one statement per row; otherwise one run per row.
 * `ids`: the columns holding ids (sent as text, bound as 16 bytes). `spec`: the column holding a
 * job's spec, sent as `[text, digest]` and stored once in `job_specs`.
 */
const statements: { sql: string; width: number; bulk?: true; ids?: number[]; spec?: number }[] = [
  {
    sql: 'INSERT INTO packets (id, name, body, created_at, owner) VALUES (?, ?, ?, ?, ?)',
    width: 5,
    ids: [0],
  },
  {
    sql: 'INSERT INTO artifacts (id, project, body, created_at) VALUES (?, ?, ?, ?)',
    width: 4,
    ids: [0],
  },
  {
    sql: `INSERT INTO orders (${orderColumns}) VALUES (${Array.from({ length: 15 }, () => '?').join(', ')})`,
    width: 15,
    ids: [0, 2],
  },
  {
    sql: `INSERT INTO jobs (${jobColumns}) VALUES {rows}`,
    width: 11,
    bulk: true,
    ids: [0, 1],
    spec: 4,
  },
  {
    sql: 'INSERT INTO locks (job_id, next_id, released) SELECT column1, column2, 0 FROM (VALUES {rows})',
    width: 2,
    bulk: true,
    ids: [0, 1],
  },
  {
    // Values come id first, as for PostgreSQL's unnest.
    sql: `UPDATE orders SET state = u.state, started_at = u.started_at, ended_at = u.ended_at,
           reason = u.reason
         FROM (SELECT ? AS id, ? AS state, ? AS started_at, ? AS ended_at, ? AS reason) AS u
         WHERE orders.id = u.id`,
    width: 5,
    ids: [0],
  },
  {
    sql: `UPDATE jobs SET state = u.column2, attempt = u.column3, reason = u.column4,
           retry_at = u.column5
         FROM (VALUES {rows}) AS u WHERE jobs.id = u.column1`,
    width: 5,
    bulk: true,
    ids: [0],
  },
  {
    sql: `INSERT INTO target_fulfilments (${attemptColumns}) SELECT * FROM (VALUES {rows}) WHERE true
         ON CONFLICT (job_id, attempt) DO UPDATE SET state = excluded.state,
           transitions = excluded.transitions, reason = excluded.reason,
           exit_code = excluded.exit_code, message = excluded.message, product = excluded.product,
           product_hash = excluded.product_hash, artefacts = excluded.artefacts`,
    width: 12,
    bulk: true,
    ids: [0],
  },
  {
    sql: 'UPDATE locks SET released = 1 WHERE job_id IN (VALUES {rows})',
    width: 1,
    bulk: true,
    ids: [0],
  },
  {
    sql: `INSERT INTO targets (id, kind, slots, labels, projects, url, live, updated_at, runs)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, slots = excluded.slots,
           labels = excluded.labels, projects = excluded.projects, url = excluded.url,
           live = excluded.live, updated_at = excluded.updated_at, runs = excluded.runs`,
    width: 9,
  },
  { sql: 'DELETE FROM products WHERE target_id = ?', width: 1 },
  { sql: 'DELETE FROM targets WHERE id = ?', width: 1 },
  {
    // A product made again where a copy was kept takes the new copy's hash.
    sql: `INSERT INTO products (product_id, target_id, hash) VALUES {rows}
         ON CONFLICT (product_id, target_id) DO UPDATE SET hash = excluded.hash`,
    width: 3,
    bulk: true,
  },
  { sql: 'DELETE FROM products WHERE product_id = ? AND target_id = ?', width: 2 },
  {
    sql: 'INSERT INTO resources (key, holder) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET holder = excluded.holder',
    width: 2,
    ids: [1],
  },
  {
    sql: 'INSERT INTO events (seq, at, type, order_id, job_id, body) VALUES {rows}',
    width: 6,
    bulk: true,
    ids: [3, 4],
  },
]

const specs = {
  insert: 'INSERT INTO job_specs (hash, body) VALUES (?, ?) ON CONFLICT (hash) DO NOTHING',
  id: 'SELECT id FROM job_specs WHERE hash = ?',
  lastToken: 'SELECT token FROM last_commit WHERE one = 1',
  setToken:
    'INSERT INTO last_commit (one, token) VALUES (1, ?) ON CONFLICT (one) DO UPDATE SET token = excluded.token',
}

interface Reply {
  id?: number
  error?: { name?: string; message: string; code?: unknown }
  closed?: boolean
}

export class SqliteWriter {
  private readonly worker: Worker
  private readonly pending = new Map<number, { resolve(): void; reject(e: Error): void }>()
  private next = 0
  private closing: (() => void) | undefined
  /** Why the thread is gone, once it is: every later commit fails with it. */
  private dead: Error | undefined

  constructor(path: string, synchronous: string, busyTimeoutMs: number) {
    this.worker = new Worker(new URL('./sqlite-writer-thread.js', import.meta.url), {
      workerData: { path, synchronous, busyTimeoutMs, statements, specs },
    })
    // An idle writer keeps no process alive; one with a commit in flight does.
    this.worker.unref()
    this.worker.on('message', (m: Reply) => this.answered(m))
    this.worker.on('error', (e) => this.fail(e))
    this.worker.on('exit', () => this.fail(new Error('the SQLite writer thread stopped')))
  }

  /** Writes one batch's steps in one transaction; resolves once it is committed. */
  write(batch: { token?: string; retried?: boolean; steps: Step[] }): Promise<void> {
    if (this.dead !== undefined) return Promise.reject(this.dead)
    const id = ++this.next
    if (this.pending.size === 0) this.worker.ref()
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject })
      this.worker.postMessage({ id, ...batch })
    })
  }

  /** Closes the connection and ends the thread, after the commits already sent. */
  async close(): Promise<void> {
    if (this.dead !== undefined) return
    this.worker.ref()
    await new Promise<void>((resolve) => {
      this.closing = resolve
      this.worker.postMessage({ close: true })
    })
    await this.worker.terminate()
  }

  private answered(m: Reply): void {
    if (m.closed === true) {
      this.closing?.()
      return
    }
    const waiter = this.pending.get(m.id!)
    if (waiter === undefined) return
    this.pending.delete(m.id!)
    if (this.pending.size === 0) this.worker.unref()
    if (m.error === undefined) waiter.resolve()
    else {
      const error = Object.assign(new Error(m.error.message), { code: m.error.code })
      if (m.error.name !== undefined) error.name = m.error.name
      waiter.reject(error)
    }
  }

  private fail(e: Error): void {
    this.dead ??= e
    for (const waiter of this.pending.values()) waiter.reject(this.dead)
    this.pending.clear()
    this.closing?.()
  }
}
