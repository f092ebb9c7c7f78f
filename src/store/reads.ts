/**
 * The reads both backends share: their SQL (with `?` placeholders) and the assembly of rows into
 * what the store returns.
 */
import type { Id } from '../core/ids.ts'
import { emptyCounts } from '../core/engine/fulfilment.ts'
import type { JobCounts } from '../core/engine/fulfilment.ts'
import { specMap } from './job-specs.ts'
import {
  attemptColumns,
  decodeAttempt,
  decodeJob,
  decodeLock,
  decodeOrder,
  decodePacket,
  decodeTarget,
  fromBin,
  jobColumns,
  orderColumns,
} from './rows.ts'
import type { AttemptRow, Bin, JobRow, LockRowDb, OrderRow, PacketRow, TargetRow } from './rows.ts'
import type { Snapshot, StoredOrder } from './store.ts'

const prefixed = (columns: string, alias: string) => columns.replace(/(^|, )/g, `$1${alias}.`)

/** The read queries, written with `?` placeholders; PostgreSQL numbers them ({@link numbered}). */
export const readSql = {
  packets: 'SELECT id, name, body, created_at FROM packets ORDER BY created_at',
  runningOrders: `SELECT ${orderColumns} FROM orders WHERE state = 'running' ORDER BY id`,
  runningSpecs: `SELECT id, body FROM job_specs WHERE id IN (SELECT DISTINCT j.spec FROM jobs j
    JOIN orders o ON o.id = j.order_id WHERE o.state = 'running')`,
  specsOf:
    'SELECT id, body FROM job_specs WHERE id IN (SELECT DISTINCT spec FROM jobs WHERE order_id = ?)',
  specId: 'SELECT id FROM job_specs WHERE hash = ?',
  runningJobs: `SELECT ${prefixed(jobColumns, 'j')} FROM jobs j JOIN orders o ON o.id = j.order_id
    WHERE o.state = 'running' ORDER BY j.order_id, j.idx`,
  runningLocks: `SELECT l.job_id, l.next_id, l.released, j.order_id FROM locks l
    JOIN jobs j ON j.id = l.job_id JOIN orders o ON o.id = j.order_id WHERE o.state = 'running'
    ORDER BY j.order_id`,
  runningAttempts: `SELECT ${prefixed(attemptColumns, 'f')}, j.order_id FROM target_fulfilments f
    JOIN jobs j ON j.id = f.job_id JOIN orders o ON o.id = j.order_id
    WHERE o.state = 'running' ORDER BY f.job_id, f.attempt`,
  targets: 'SELECT id, kind, slots, labels, projects, url, live FROM targets ORDER BY id',
  products: 'SELECT product_id, target_id FROM products',
  holders: 'SELECT key, holder FROM resources WHERE holder IS NOT NULL',
  order: `SELECT ${orderColumns} FROM orders WHERE id = ?`,
  orderCounts: 'SELECT state, count(*) AS n FROM jobs WHERE order_id = ? GROUP BY state',
  listOrders: `SELECT ${orderColumns} FROM orders ORDER BY id DESC LIMIT ?`,
  jobs: `SELECT ${jobColumns} FROM jobs WHERE order_id = ? ORDER BY idx`,
  job: `SELECT ${jobColumns} FROM jobs WHERE id = ?`,
  specOfJob: 'SELECT id, body FROM job_specs WHERE id = (SELECT spec FROM jobs WHERE id = ?)',
  attempts: `SELECT ${prefixed(attemptColumns, 'f')}, j.order_id FROM target_fulfilments f
    JOIN jobs j ON j.id = f.job_id WHERE f.job_id = ? ORDER BY f.attempt`,
  locks: `SELECT l.job_id, l.next_id, l.released FROM locks l JOIN jobs j ON j.id = l.job_id
    WHERE j.order_id = ? ORDER BY j.idx, l.next_id`,
  events:
    'SELECT seq, at, type, order_id, job_id, body FROM events WHERE seq > ? ORDER BY seq LIMIT ?',
} as const

/** Turns `?` placeholders into PostgreSQL's `$1, $2, …`. */
export function numbered(sql: string): string {
  let i = 0
  return sql.replace(/\?/g, () => `$${++i}`)
}

/** The rows {@link readSql} returns for a snapshot, from either backend. */
export interface SnapshotRows {
  specs: { id: number | string; body: string }[]
  packets: PacketRow[]
  orders: OrderRow[]
  jobs: Iterable<JobRow>
  locks: Iterable<LockRowDb & { order_id: Bin }>
  attempts: (AttemptRow & { order_id: Bin })[]
  targets: TargetRow[]
  products: { product_id: string; target_id: string }[]
  holders: { key: string; holder: Bin }[]
}

/**
 * Splits rows sorted by their `order_id` into runs, one per order, converting each order's id
 * once rather than once per row.
 */
function byOrder<R extends { order_id: Bin }, T>(
  rows: Iterable<R>,
  decode: (row: R, orderId: Id) => T,
): Map<Id, T[]> {
  const out = new Map<Id, T[]>()
  let last: Bin | undefined
  let list: T[] = []
  let orderId = ''
  for (const r of rows) {
    if (last === undefined || !Buffer.from(r.order_id).equals(last)) {
      last = r.order_id
      orderId = fromBin(r.order_id)
      list = out.get(orderId) ?? []
      out.set(orderId, list)
    }
    list.push(decode(r, orderId))
  }
  return out
}

export function assembleSnapshot(rows: SnapshotRows): Snapshot {
  const specs = specMap(rows.specs)
  const jobs = byOrder(rows.jobs, (r, orderId) => decodeJob(r, specs, orderId))
  const locks = byOrder(rows.locks, decodeLock)
  return {
    packets: rows.packets.map(decodePacket),
    orders: rows.orders.map((r) => {
      const stored = decodeOrder(r)
      return {
        stored,
        jobs: jobs.get(stored.order.id) ?? [],
        locks: locks.get(stored.order.id) ?? [],
      }
    }),
    attempts: rows.attempts.map(decodeAttempt),
    targets: rows.targets.map(decodeTarget),
    products: rows.products.map((r) => ({ productId: r.product_id, targetId: r.target_id })),
    holders: rows.holders.map((r) => ({ key: r.key, holder: fromBin(r.holder) })),
  }
}

/** An order row and its per-state job counts, as {@link Store.order} returns them. */
export function orderWithCounts(
  row: OrderRow,
  states: { state: string; n: number | string }[],
): StoredOrder & { counts: JobCounts; total: number } {
  const counts = emptyCounts()
  let total = 0
  for (const r of states) {
    counts[r.state as keyof JobCounts] = Number(r.n)
    total += Number(r.n)
  }
  return { ...decodeOrder(row), counts, total }
}
