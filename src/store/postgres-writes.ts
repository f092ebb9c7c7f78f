/**
 * The statements of a PostgreSQL commit: each over `unnest` of column arrays, so a commit is a
 * fixed number of statements whatever its size, each named so that a session parses and plans
 * it once, and sent with the session's socket corked so that they leave in one write.
 */
import type { Writable } from 'node:stream'
import type pg from 'pg'
import type { Job } from '../core/model.ts'
import { attemptColumns, binaryRows, jobColumns, orderColumns, toBin } from './rows.ts'
import type { Batch } from './store.ts'

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
export function unnest(typesOf: string[]): string {
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

/**
 * Sends the batch's statements, in the order they must run, without waiting for each: on the
 * pipelined session they go out together and cost one round trip, not one each. Each is
 * added to `sent`; the caller waits for them all. `jobs` are the new orders' jobs, `specIds`
 * the ids of their specs, in the same order.
 */
export function sendBatch(
  c: pg.ClientBase,
  batch: Batch,
  jobs: readonly Job[],
  specIds: readonly number[],
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
      jobs.map((job, i) => binaryRows.job(job, specIds[i])),
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

/**
 * Runs `fn` with the session's socket corked: the statements it sends leave in one write when it
 * ends. Each statement corks its own messages; the socket counts the corks.
 */
export function corked(c: pg.ClientBase, fn: () => void): void {
  const stream = (c as unknown as { connection?: { stream?: Partial<Writable> } }).connection
    ?.stream
  stream?.cork?.()
  try {
    fn()
  } finally {
    stream?.uncork?.()
  }
}
