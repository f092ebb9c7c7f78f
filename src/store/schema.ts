/**
 * The schema both backends share: numbered migrations (never edited once released; a change is a
 * new migration) and the codecs between rows and domain objects. Ids are 16-byte binaries.
 */
import { LockstepError } from '../core/errors.ts'
import { bytesToId, idToBytes } from '../core/ids.ts'
import type { Id } from '../core/ids.ts'
import type { Job, Lock, Order, Target } from '../core/model.ts'
import type { PacketRecord } from '../core/engine/engine.ts'
import { emptyCounts } from '../core/engine/fulfilment.ts'
import type { JobCounts, TargetFulfilment } from '../core/engine/fulfilment.ts'
import type {
  ArtifactRecord,
  Batch,
  EventRow,
  JobUpdate,
  OrderUpdate,
  ProductLocation,
  Snapshot,
  StoredEvent,
  StoredOrder,
} from './store.ts'

/** The SQL dialects Lockstep speaks. */
export type Dialect = 'sqlite' | 'postgres'

interface Migration {
  version: number
  name: string
  sql: (d: Dialect) => string
}

const bin = (d: Dialect) => (d === 'sqlite' ? 'BLOB' : 'BYTEA')

/** Every migration, in order. */
export const migrations: readonly Migration[] = [
  {
    version: 1,
    name: 'orders, jobs, locks, targets, fulfilment, events',
    sql: (d) => `
CREATE TABLE packets (
  id ${bin(d)} PRIMARY KEY,
  name TEXT NOT NULL,
  body TEXT NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE INDEX packets_name ON packets (name, created_at);
CREATE TABLE artifacts (
  id ${bin(d)} PRIMARY KEY,
  project TEXT NOT NULL,
  body TEXT NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE TABLE orders (
  id ${bin(d)} PRIMARY KEY,
  source_kind TEXT NOT NULL,
  source_id ${bin(d)} NOT NULL,
  priority INTEGER NOT NULL,
  owner TEXT NOT NULL,
  creator TEXT NOT NULL,
  override TEXT,
  state TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  started_at BIGINT,
  ended_at BIGINT,
  reason TEXT,
  iterations INTEGER NOT NULL
);
CREATE INDEX orders_state ON orders (state);
CREATE TABLE jobs (
  id ${bin(d)} PRIMARY KEY,
  order_id ${bin(d)} NOT NULL,
  idx INTEGER NOT NULL,
  name TEXT NOT NULL,
  op TEXT NOT NULL,
  policy TEXT NOT NULL,
  uses TEXT NOT NULL,
  failure TEXT NOT NULL,
  timeout_ms BIGINT,
  state TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  step INTEGER,
  iteration INTEGER,
  reason TEXT,
  retry_at BIGINT
);
CREATE INDEX jobs_order ON jobs (order_id, idx);
CREATE TABLE locks (
  job_id ${bin(d)} NOT NULL,
  next_id ${bin(d)} NOT NULL,
  released SMALLINT NOT NULL DEFAULT 0,
  PRIMARY KEY (job_id, next_id)
);
CREATE INDEX locks_next ON locks (next_id);
CREATE TABLE resources (
  key TEXT PRIMARY KEY,
  holder ${bin(d)}
);
CREATE TABLE targets (
  id TEXT PRIMARY KEY,
  kind TEXT NOT NULL,
  slots INTEGER NOT NULL,
  labels TEXT NOT NULL,
  projects TEXT NOT NULL,
  live SMALLINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE TABLE target_fulfilments (
  job_id ${bin(d)} NOT NULL,
  attempt INTEGER NOT NULL,
  target TEXT NOT NULL,
  state TEXT NOT NULL,
  transitions TEXT NOT NULL,
  reason TEXT,
  exit_code INTEGER,
  message TEXT,
  product TEXT,
  PRIMARY KEY (job_id, attempt)
);
CREATE TABLE products (
  product_id TEXT NOT NULL,
  target_id TEXT NOT NULL,
  PRIMARY KEY (product_id, target_id)
);
CREATE INDEX products_target ON products (target_id);
CREATE TABLE events (
  seq ${d === 'sqlite' ? 'INTEGER PRIMARY KEY AUTOINCREMENT' : 'BIGSERIAL PRIMARY KEY'},
  at BIGINT NOT NULL,
  type TEXT NOT NULL,
  order_id ${bin(d)},
  job_id ${bin(d)},
  body TEXT NOT NULL
);
CREATE INDEX events_order ON events (order_id, seq);
`,
  },
]

/** The newest schema version this code knows. */
export const schemaVersion = migrations[migrations.length - 1]!.version

/** The table that records which migrations ran. */
export const migrationsTable = `
CREATE TABLE IF NOT EXISTS lockstep_migrations (
  version INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  applied_at BIGINT NOT NULL
)`

/** The migrations still to run over a schema at `current`; refuses a schema newer than the code. */
export function pendingMigrations(current: number, where: string): readonly Migration[] {
  if (current > schemaVersion) {
    throw new LockstepError(
      'SCHEMA_TOO_NEW',
      `${where} has schema version ${current}, newer than this Lockstep's ${schemaVersion}: upgrade Lockstep`,
    )
  }
  return migrations.filter((m) => m.version > current)
}

// ---- codecs ----

/** A binary column as it comes back: Buffer from both drivers. */
type Bin = Uint8Array

export const toBin = (id: Id): Buffer => Buffer.from(idToBytes(id))
export const fromBin = (b: Bin): Id => bytesToId(b)
const opt = <T>(v: T | null | undefined): T | undefined => (v === null ? undefined : v)
const num = (v: number | string | null | undefined): number | undefined =>
  v === null || v === undefined ? undefined : Number(v)

export interface JobRow {
  id: Bin
  order_id: Bin
  idx: number
  name: string
  op: string
  policy: string
  uses: string
  failure: string
  timeout_ms: number | string | null
  state: string
  attempt: number
  step: number | null
  iteration: number | null
  reason: string | null
  retry_at: number | string | null
}

export const jobColumns =
  'id, order_id, idx, name, op, policy, uses, failure, timeout_ms, state, attempt, step, iteration, reason, retry_at'

export function jobValues(j: Job): unknown[] {
  return [
    toBin(j.id),
    toBin(j.orderId),
    j.index,
    j.name,
    JSON.stringify(j.op),
    JSON.stringify(j.policy),
    JSON.stringify(j.uses),
    JSON.stringify(j.failure),
    j.timeoutMs ?? null,
    j.state,
    j.attempt,
    j.step ?? null,
    j.iteration ?? null,
    j.reason ?? null,
    j.retryAt ?? null,
  ]
}

export function decodeJob(r: JobRow): Job {
  const job: Job = {
    id: fromBin(r.id),
    orderId: fromBin(r.order_id),
    index: r.idx,
    name: r.name,
    op: JSON.parse(r.op) as Job['op'],
    policy: JSON.parse(r.policy) as Job['policy'],
    uses: JSON.parse(r.uses) as Job['uses'],
    failure: JSON.parse(r.failure) as Job['failure'],
    timeoutMs: num(r.timeout_ms),
    state: r.state as Job['state'],
    attempt: r.attempt,
  }
  if (r.step !== null) job.step = r.step
  if (r.iteration !== null) job.iteration = r.iteration
  if (r.reason !== null) job.reason = r.reason
  if (r.retry_at !== null) job.retryAt = Number(r.retry_at)
  return job
}

export interface OrderRow {
  id: Bin
  source_kind: string
  source_id: Bin
  priority: number
  owner: string
  creator: string
  override: string | null
  state: string
  created_at: number | string
  started_at: number | string | null
  ended_at: number | string | null
  reason: string | null
  iterations: number
}

export const orderColumns =
  'id, source_kind, source_id, priority, owner, creator, override, state, created_at, started_at, ended_at, reason, iterations'

export function orderValues(s: StoredOrder): unknown[] {
  const o = s.order
  const sourceId = o.source.kind === 'packet' ? o.source.packetId : o.source.artifactId
  return [
    toBin(o.id),
    o.source.kind,
    toBin(sourceId),
    o.priority,
    o.owner,
    o.creator,
    o.override === undefined ? null : JSON.stringify(o.override),
    o.state,
    o.createdAt,
    s.startedAt ?? null,
    s.endedAt ?? null,
    s.reason ?? null,
    s.iterations,
  ]
}

export function decodeOrder(r: OrderRow): StoredOrder {
  const sourceId = fromBin(r.source_id)
  const order: Order = {
    id: fromBin(r.id),
    source:
      r.source_kind === 'packet'
        ? { kind: 'packet', packetId: sourceId }
        : { kind: 'artifact', artifactId: sourceId },
    priority: r.priority,
    owner: r.owner,
    creator: r.creator,
    override: r.override === null ? undefined : (JSON.parse(r.override) as Order['override']),
    state: r.state as Order['state'],
    createdAt: Number(r.created_at),
  }
  const out: StoredOrder = { order, iterations: r.iterations }
  const startedAt = num(r.started_at)
  const endedAt = num(r.ended_at)
  if (startedAt !== undefined) out.startedAt = startedAt
  if (endedAt !== undefined) out.endedAt = endedAt
  if (r.reason !== null) out.reason = r.reason
  return out
}

/** Row values for the writes both backends make, in the column order of their statements. */
export const rowValues = {
  packet: (p: PacketRecord): unknown[] => [
    toBin(p.id),
    p.name,
    JSON.stringify(p.packet),
    p.createdAt,
  ],
  artifact: (a: ArtifactRecord): unknown[] => [
    toBin(a.id),
    a.artifact.project,
    JSON.stringify(a.artifact),
    a.createdAt,
  ],
  lock: (l: Lock): unknown[] => [toBin(l.jobId), toBin(l.nextId)],
  orderUpdate: (u: OrderUpdate): unknown[] => [
    toBin(u.id),
    u.state,
    u.startedAt ?? null,
    u.endedAt ?? null,
    u.reason ?? null,
  ],
  jobUpdate: (u: JobUpdate): unknown[] => [
    toBin(u.id),
    u.state,
    u.attempt,
    u.reason ?? null,
    u.retryAt ?? null,
  ],
  target: (t: Batch['targets'][number]): unknown[] => [
    t.target.id,
    t.target.kind,
    t.target.availability,
    JSON.stringify(t.target.labels),
    JSON.stringify(t.target.projects),
    t.live ? 1 : 0,
    t.at,
  ],
  product: (p: ProductLocation): unknown[] => [p.productId, p.targetId],
  holder: (h: Batch['holders'][number]): unknown[] => [
    h.key,
    h.holder === undefined ? null : toBin(h.holder),
  ],
  event: (e: EventRow): unknown[] => [
    e.at,
    e.type,
    e.orderId === undefined ? null : toBin(e.orderId),
    e.jobId === undefined ? null : toBin(e.jobId),
    e.body,
  ],
}

export interface AttemptRow {
  job_id: Bin
  attempt: number
  target: string
  state: string
  transitions: string
  reason: string | null
  exit_code: number | null
  message: string | null
  product: string | null
}

export const attemptColumns =
  'job_id, attempt, target, state, transitions, reason, exit_code, message, product'

export function attemptValues(a: TargetFulfilment): unknown[] {
  return [
    toBin(a.jobId),
    a.attempt,
    a.target,
    a.state,
    JSON.stringify(a.transitions),
    a.reason ?? null,
    a.exitCode ?? null,
    a.message ?? null,
    a.product ?? null,
  ]
}

/** Decodes an attempt; `orderId` comes from the job it belongs to. */
export function decodeAttempt(r: AttemptRow & { order_id: Bin }): TargetFulfilment {
  const a: TargetFulfilment = {
    jobId: fromBin(r.job_id),
    orderId: fromBin(r.order_id),
    attempt: r.attempt,
    target: r.target,
    state: r.state as TargetFulfilment['state'],
    transitions: JSON.parse(r.transitions) as TargetFulfilment['transitions'],
  }
  const reason = opt(r.reason)
  if (reason !== undefined) a.reason = reason
  if (r.exit_code !== null) a.exitCode = r.exit_code
  if (r.message !== null) a.message = r.message
  if (r.product !== null) a.product = r.product
  return a
}

export interface TargetRow {
  id: string
  kind: string
  slots: number
  labels: string
  projects: string
  live: number
}

export function decodeTarget(r: TargetRow): { target: Target; live: boolean } {
  return {
    target: {
      id: r.id,
      kind: r.kind as Target['kind'],
      availability: r.slots,
      labels: JSON.parse(r.labels) as Target['labels'],
      projects: JSON.parse(r.projects) as string[],
    },
    live: r.live === 1,
  }
}

export interface PacketRow {
  id: Bin
  name: string
  body: string
  created_at: number | string
}

export function decodePacket(r: PacketRow): PacketRecord {
  return {
    id: fromBin(r.id),
    name: r.name,
    packet: JSON.parse(r.body) as PacketRecord['packet'],
    createdAt: Number(r.created_at),
  }
}

export interface EventRowDb {
  seq: number | string
  at: number | string
  type: string
  order_id: Bin | null
  job_id: Bin | null
  body: string
}

export function decodeEvent(r: EventRowDb): StoredEvent {
  const e: StoredEvent = { seq: Number(r.seq), at: Number(r.at), type: r.type, body: r.body }
  if (r.order_id !== null) e.orderId = fromBin(r.order_id)
  if (r.job_id !== null) e.jobId = fromBin(r.job_id)
  return e
}

// ---- reads both backends share: the SQL (with `?` placeholders) and the assembly of rows ----

const prefixed = (columns: string, alias: string) => columns.replace(/(^|, )/g, `$1${alias}.`)

/** The read queries, written with `?` placeholders; PostgreSQL numbers them ({@link numbered}). */
export const readSql = {
  packets: 'SELECT id, name, body, created_at FROM packets ORDER BY created_at',
  runningOrders: `SELECT ${orderColumns} FROM orders WHERE state = 'running' ORDER BY id`,
  runningJobs: `SELECT ${prefixed(jobColumns, 'j')} FROM jobs j JOIN orders o ON o.id = j.order_id
    WHERE o.state = 'running' ORDER BY j.order_id, j.idx`,
  runningLocks: `SELECT l.job_id, l.next_id, l.released, j.order_id FROM locks l
    JOIN jobs j ON j.id = l.job_id JOIN orders o ON o.id = j.order_id WHERE o.state = 'running'`,
  runningAttempts: `SELECT ${prefixed(attemptColumns, 'f')}, j.order_id FROM target_fulfilments f
    JOIN jobs j ON j.id = f.job_id JOIN orders o ON o.id = j.order_id
    WHERE o.state = 'running' ORDER BY f.job_id, f.attempt`,
  targets: 'SELECT id, kind, slots, labels, projects, live FROM targets ORDER BY id',
  products: 'SELECT product_id, target_id FROM products',
  holders: 'SELECT key, holder FROM resources WHERE holder IS NOT NULL',
  order: `SELECT ${orderColumns} FROM orders WHERE id = ?`,
  orderCounts: 'SELECT state, count(*) AS n FROM jobs WHERE order_id = ? GROUP BY state',
  listOrders: `SELECT ${orderColumns} FROM orders ORDER BY id DESC LIMIT ?`,
  jobs: `SELECT ${jobColumns} FROM jobs WHERE order_id = ? ORDER BY idx`,
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

export interface LockRowDb {
  job_id: Bin
  next_id: Bin
  released: number
}

export function decodeLock(r: LockRowDb): Lock & { released: boolean } {
  return { jobId: fromBin(r.job_id), nextId: fromBin(r.next_id), released: r.released === 1 }
}

/** The rows {@link readSql} returns for a snapshot, from either backend. */
export interface SnapshotRows {
  packets: PacketRow[]
  orders: OrderRow[]
  jobs: Iterable<JobRow>
  locks: Iterable<LockRowDb & { order_id: Bin }>
  attempts: (AttemptRow & { order_id: Bin })[]
  targets: TargetRow[]
  products: { product_id: string; target_id: string }[]
  holders: { key: string; holder: Bin }[]
}

function groupBy<T>(items: Iterable<T>, key: (item: T) => Id): Map<Id, T[]> {
  const out = new Map<Id, T[]>()
  for (const item of items) {
    const k = key(item)
    let list = out.get(k)
    if (list === undefined) out.set(k, (list = []))
    list.push(item)
  }
  return out
}

export function assembleSnapshot(rows: SnapshotRows): Snapshot {
  const jobs = groupBy(
    (function* () {
      for (const r of rows.jobs) yield decodeJob(r)
    })(),
    (j) => j.orderId,
  )
  const locks = groupBy(
    (function* () {
      for (const r of rows.locks) yield { orderId: fromBin(r.order_id), lock: decodeLock(r) }
    })(),
    (l) => l.orderId,
  )
  return {
    packets: rows.packets.map(decodePacket),
    orders: rows.orders.map((r) => {
      const stored = decodeOrder(r)
      return {
        stored,
        jobs: jobs.get(stored.order.id) ?? [],
        locks: (locks.get(stored.order.id) ?? []).map((l) => l.lock),
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
