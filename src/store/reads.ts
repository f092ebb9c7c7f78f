/**
 * The reads both backends share, written once: their SQL (with `?` placeholders), the assembly of
 * a snapshot from its rows, and {@link StoreReads}, the store's read methods over a query callback
 * each backend provides. A backend keeps only its own: connections, transactions, dialect.
 *
 * Invariant: reading one order or listing many costs one query, whatever the number of orders.
 */
import type { Id } from '../core/ids.ts'
import type { Job, Lock } from '../core/model.ts'
import { emptyCounts } from '../core/engine/fulfilment.ts'
import type { JobCounts, TargetFulfilment } from '../core/engine/fulfilment.ts'
import { specMap } from './job-specs.ts'
import { countSql, pageSql, sortKey } from './order-pages.ts'
import type { OrderQuery } from './store.ts'
import {
  attemptColumns,
  decodeAttempt,
  decodeEvent,
  decodeJob,
  decodeLock,
  decodeOrder,
  decodePacket,
  decodeTarget,
  fromBin,
  jobColumns,
  orderColumns,
  toBin,
} from './rows.ts'
import type {
  AttemptRow,
  Bin,
  EventRowDb,
  JobRow,
  LockRowDb,
  OrderRow,
  PacketRow,
  TargetRow,
} from './rows.ts'
import type {
  AttemptsOnTarget,
  OrderPage,
  OrderWithCounts,
  ProductLocation,
  Snapshot,
  Store,
  StoredEvent,
} from './store.ts'

const prefixed = (columns: string, alias: string) => columns.replace(/(^|, )/g, `$1${alias}.`)

/**
 * The orders `listed` selects (all their columns), each with its jobs counted by state: one row
 * per order and job state, newest order first; an order without jobs has one row, `job_state`
 * null. The jobs are reached by a join from each listed order, never by `IN (…)`: PostgreSQL
 * plans an `IN` over many orders as a scan of every job, a join as one index lookup per order.
 */
const countedOrders = (listed: string, sort = 'id DESC') => `WITH listed AS (${listed})
  SELECT ${prefixed(orderColumns, 'l')}, c.state AS job_state, c.n FROM listed l
  LEFT JOIN (SELECT k.id, j.state, count(*) AS n FROM listed k JOIN jobs j ON j.order_id = k.id
    GROUP BY k.id, j.state) c ON c.id = l.id
  ORDER BY ${prefixed(sort, 'l')}`

/** One target's attempts with their order ids, newest first; `where` adds to the filter. */
function onTarget(where: string): string {
  const owners = where.includes('o.owner') ? ' JOIN orders o ON o.id = j.order_id' : ''
  return `SELECT ${prefixed(attemptColumns, 'f')}, j.order_id FROM target_fulfilments f
    JOIN jobs j ON j.id = f.job_id${owners} WHERE f.target = ?${where}
    ORDER BY f.started_at DESC, f.job_id DESC, f.attempt DESC LIMIT ?`
}

/** The read queries, written with `?` placeholders; a backend whose driver numbers them converts. */
export const readSql = {
  packets: 'SELECT id, name, body, created_at, owner FROM packets ORDER BY created_at',
  runningOrders: `SELECT ${orderColumns} FROM orders WHERE state = 'running' ORDER BY id`,
  runningSpecs: `SELECT id, body FROM job_specs WHERE id IN (SELECT DISTINCT j.spec FROM jobs j
    JOIN orders o ON o.id = j.order_id WHERE o.state = 'running')`,
  specsOf:
    'SELECT id, body FROM job_specs WHERE id IN (SELECT DISTINCT spec FROM jobs WHERE order_id = ?)',
  runningJobs: `SELECT ${prefixed(jobColumns, 'j')} FROM jobs j JOIN orders o ON o.id = j.order_id
    WHERE o.state = 'running' ORDER BY j.order_id, j.idx`,
  runningLocks: `SELECT l.job_id, l.next_id, l.released, j.order_id FROM locks l
    JOIN jobs j ON j.id = l.job_id JOIN orders o ON o.id = j.order_id WHERE o.state = 'running'
    ORDER BY j.order_id`,
  runningAttempts: `SELECT ${prefixed(attemptColumns, 'f')}, j.order_id FROM target_fulfilments f
    JOIN jobs j ON j.id = f.job_id JOIN orders o ON o.id = j.order_id
    WHERE o.state = 'running' ORDER BY f.job_id, f.attempt`,
  targets: 'SELECT id, kind, slots, labels, projects, url, live, runs FROM targets ORDER BY id',
  products: 'SELECT product_id, target_id, hash FROM products',
  holders: 'SELECT key, holder FROM resources WHERE holder IS NOT NULL',
  order: countedOrders(`SELECT ${orderColumns} FROM orders WHERE id = ?`),
  listOrders: countedOrders(`SELECT ${orderColumns} FROM orders ORDER BY id DESC LIMIT ?`),
  // Served by the index orders_owner (owner, id): one owner's newest orders, whatever the others'.
  listOwnOrders: countedOrders(
    `SELECT ${orderColumns} FROM orders WHERE owner = ? ORDER BY id DESC LIMIT ?`,
  ),
  jobs: `SELECT ${jobColumns} FROM jobs WHERE order_id = ? ORDER BY idx`,
  job: `SELECT ${jobColumns} FROM jobs WHERE id = ?`,
  specOfJob: 'SELECT id, body FROM job_specs WHERE id = (SELECT spec FROM jobs WHERE id = ?)',
  attempts: `SELECT ${prefixed(attemptColumns, 'f')}, j.order_id FROM target_fulfilments f
    JOIN jobs j ON j.id = f.job_id WHERE f.job_id = ? ORDER BY f.attempt`,
  // One index lookup per job of the order, its latest attempt by the primary key.
  artefacts: `SELECT f.job_id, f.artefacts FROM jobs j
    JOIN target_fulfilments f ON f.job_id = j.id AND f.attempt = j.attempt
    WHERE j.order_id = ? AND f.artefacts IS NOT NULL ORDER BY j.idx`,
  // Served by the index target_fulfilments_target (target, started_at, job_id, attempt), read
  // backwards: the newest first, stopping at the limit, the filters checked row by row.
  attemptsOnTarget: onTarget(''),
  attemptsOnTargetInState: onTarget(' AND f.state = ?'),
  ownAttemptsOnTarget: onTarget(' AND o.owner = ?'),
  ownAttemptsOnTargetInState: onTarget(' AND f.state = ? AND o.owner = ?'),
  locks: `SELECT l.job_id, l.next_id, l.released FROM locks l JOIN jobs j ON j.id = l.job_id
    WHERE j.order_id = ? ORDER BY j.idx, l.next_id`,
  events:
    'SELECT seq, at, type, order_id, job_id, body FROM events WHERE seq > ? ORDER BY seq LIMIT ?',
  // Served by the index events_order (order_id, seq): one order's events, whatever the others'.
  orderEvents: `SELECT seq, at, type, order_id, job_id, body FROM events
    WHERE order_id = ? AND seq > ? ORDER BY seq LIMIT ?`,
  lastEventSeq: 'SELECT COALESCE(MAX(seq), 0) AS seq FROM events',
} as const

/** A row of {@link countedOrders}. */
interface CountedOrderRow extends OrderRow {
  job_state: string | null
  n: number | string | null
}

/** Folds {@link countedOrders} rows, which come grouped by order, into one value per order. */
function ordersWithCounts(rows: readonly CountedOrderRow[]): OrderWithCounts[] {
  const out: OrderWithCounts[] = []
  let last: { id: Bin; order: OrderWithCounts } | undefined
  for (const r of rows) {
    if (last === undefined || Buffer.compare(r.id, last.id) !== 0) {
      last = { id: r.id, order: { ...decodeOrder(r), counts: emptyCounts(), total: 0 } }
      out.push(last.order)
    }
    if (r.job_state === null) continue
    last.order.counts[r.job_state as keyof JobCounts] = Number(r.n)
    last.order.total += Number(r.n)
  }
  return out
}

// ---- snapshot: what a restart reads ----

/** The rows a snapshot is made of, from either backend. */
export interface SnapshotRows {
  specs: { id: number | string; body: string }[]
  packets: PacketRow[]
  orders: OrderRow[]
  /** Sorted by order. */
  jobs: JobRow[]
  /** Sorted by order. */
  locks: (LockRowDb & { order_id: Bin })[]
  attempts: (AttemptRow & { order_id: Bin })[]
  targets: TargetRow[]
  products: { product_id: string; target_id: string; hash: string | null }[]
  holders: { key: string; holder: Bin }[]
  /** One row. */
  lastEventSeq: { seq: number | string }[]
}

/**
 * The queries of a snapshot but its jobs and locks, by the field of {@link SnapshotRows} each
 * fills; none takes parameters. A backend runs them in one read transaction, so that they agree.
 */
export const snapshotSql = {
  specs: readSql.runningSpecs,
  packets: readSql.packets,
  orders: readSql.runningOrders,
  attempts: readSql.runningAttempts,
  targets: readSql.targets,
  products: readSql.products,
  holders: readSql.holders,
  lastEventSeq: readSql.lastEventSeq,
} as const satisfies Partial<Record<keyof SnapshotRows, string>>

/**
 * The jobs and locks of every running order in one query each. A backend may read them its own
 * way instead (SQLite reads them order by order, as arrays: see `SqliteStore.load`).
 */
export const inFlightSql = {
  jobs: readSql.runningJobs,
  locks: readSql.runningLocks,
} as const satisfies Partial<Record<keyof SnapshotRows, string>>

/** The rows of `queries`, each read through `read`: for a backend whose driver is synchronous. */
export function readEach<K extends string>(
  queries: Record<K, string>,
  read: (sql: string) => unknown[],
): Record<K, unknown[]> {
  const rows = {} as Record<K, unknown[]>
  for (const name of Object.keys(queries) as K[]) rows[name] = read(queries[name])
  return rows
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

/** A snapshot from its rows. */
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
    products: rows.products.map((r) => {
      const p: ProductLocation = { productId: r.product_id, targetId: r.target_id }
      if (r.hash !== null) p.hash = r.hash
      return p
    }),
    holders: rows.holders.map((r) => ({ key: r.key, holder: fromBin(r.holder) })),
    lastEventSeq: Number(rows.lastEventSeq[0]?.seq ?? 0),
  }
}

// ---- the read methods ----

/**
 * Runs one read statement, `?` placeholders bound to `params` in order, and gives its rows as
 * objects keyed by column name. A failure is a rejected promise, never a throw.
 */
export type Query = <R>(sql: string, params: readonly unknown[]) => Promise<R[]>

/** Reads a whole snapshot through `query`, which the caller runs inside one read transaction. */
export async function readSnapshot(query: Query): Promise<Snapshot> {
  const queries = { ...snapshotSql, ...inFlightSql }
  const rows = {} as Record<keyof typeof queries, unknown[]>
  for (const name of Object.keys(queries) as (keyof typeof queries)[]) {
    rows[name] = await query(queries[name], [])
  }
  return assembleSnapshot(rows as SnapshotRows)
}

/** The read methods of a {@link Store}, the same on every backend. */
export type Reads = Pick<
  Store,
  | 'order'
  | 'listOrders'
  | 'findOrders'
  | 'jobs'
  | 'job'
  | 'attempts'
  | 'attemptsOnTarget'
  | 'artefacts'
  | 'locks'
  | 'events'
>

/**
 * The store's read methods, written once over the {@link Query} a backend provides. Each read
 * stands alone, outside any transaction: where it takes two queries, it orders them so that a
 * commit landing in between cannot make them disagree.
 */
export class StoreReads implements Reads {
  private readonly query: Query

  constructor(query: Query) {
    this.query = query
  }

  async order(orderId: Id): Promise<OrderWithCounts | undefined> {
    return ordersWithCounts(await this.query<CountedOrderRow>(readSql.order, [toBin(orderId)]))[0]
  }

  async listOrders(limit: number, owner?: string): Promise<OrderWithCounts[]> {
    const rows =
      owner === undefined
        ? await this.query<CountedOrderRow>(readSql.listOrders, [limit])
        : await this.query<CountedOrderRow>(readSql.listOwnOrders, [owner, limit])
    return ordersWithCounts(rows)
  }

  async findOrders(q: OrderQuery): Promise<OrderPage> {
    const page = pageSql(q, orderColumns)
    const count = countSql(q)
    const orders = ordersWithCounts(
      await this.query<CountedOrderRow>(countedOrders(page.sql, sortKey(q.sort)), page.params),
    )
    const total = Number((await this.query<{ n: number | string }>(count.sql, count.params))[0]!.n)
    const last = orders.at(-1)?.order
    return orders.length < q.limit || last === undefined
      ? { orders, total }
      : { orders, total, next: { id: last.id, priority: last.priority } }
  }

  async jobs(orderId: Id): Promise<Job[]> {
    const id = toBin(orderId)
    // Jobs first: an order's jobs are written in the commit that writes their specs, and a spec
    // is never deleted, so every job read here finds its spec read next.
    const rows = await this.query<JobRow>(readSql.jobs, [id])
    if (rows.length === 0) return []
    const specs = specMap(await this.query<{ id: number; body: string }>(readSql.specsOf, [id]))
    return rows.map((r) => decodeJob(r, specs, orderId))
  }

  async job(jobId: Id): Promise<Job | undefined> {
    const id = toBin(jobId)
    const row = (await this.query<JobRow>(readSql.job, [id]))[0]
    if (row === undefined) return undefined
    const specs = specMap(await this.query<{ id: number; body: string }>(readSql.specOfJob, [id]))
    return decodeJob(row, specs)
  }

  async attempts(jobId: Id): Promise<TargetFulfilment[]> {
    const rows = await this.query<AttemptRow & { order_id: Bin }>(readSql.attempts, [toBin(jobId)])
    return rows.map(decodeAttempt)
  }

  async attemptsOnTarget(targetId: string, which: AttemptsOnTarget): Promise<TargetFulfilment[]> {
    const { limit, state, owner } = which
    const [sql, params] =
      state === undefined
        ? owner === undefined
          ? [readSql.attemptsOnTarget, [targetId, limit]]
          : [readSql.ownAttemptsOnTarget, [targetId, owner, limit]]
        : owner === undefined
          ? [readSql.attemptsOnTargetInState, [targetId, state, limit]]
          : [readSql.ownAttemptsOnTargetInState, [targetId, state, owner, limit]]
    return (await this.query<AttemptRow & { order_id: Bin }>(sql, params)).map(decodeAttempt)
  }

  async artefacts(orderId: Id): Promise<{ jobId: Id; artefacts: string[] }[]> {
    const rows = await this.query<{ job_id: Bin; artefacts: string }>(readSql.artefacts, [
      toBin(orderId),
    ])
    return rows.map((r) => ({
      jobId: fromBin(r.job_id),
      artefacts: JSON.parse(r.artefacts) as string[],
    }))
  }

  async locks(orderId: Id): Promise<(Lock & { released: boolean })[]> {
    return (await this.query<LockRowDb>(readSql.locks, [toBin(orderId)])).map(decodeLock)
  }

  async events(afterSeq: number, limit: number, orderId?: Id): Promise<StoredEvent[]> {
    const rows =
      orderId === undefined
        ? await this.query<EventRowDb>(readSql.events, [afterSeq, limit])
        : await this.query<EventRowDb>(readSql.orderEvents, [toBin(orderId), afterSeq, limit])
    return rows.map(decodeEvent)
  }
}
