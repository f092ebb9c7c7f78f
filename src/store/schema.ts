/**
 * The schema both backends share: numbered migrations (never edited once released; a change is a
 * new migration) and the codecs between rows and domain objects. Ids are 16-byte binaries.
 */
import { createHash } from 'node:crypto'
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
CREATE TABLE job_specs (
  id ${d === 'sqlite' ? 'INTEGER PRIMARY KEY' : 'BIGSERIAL PRIMARY KEY'},
  hash TEXT NOT NULL UNIQUE,
  body TEXT NOT NULL
);
CREATE TABLE jobs (
  id ${bin(d)} PRIMARY KEY,
  order_id ${bin(d)} NOT NULL,
  idx INTEGER NOT NULL,
  name TEXT NOT NULL,
  spec BIGINT NOT NULL,
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
  url TEXT,
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

export const toBin = (id: Id): Buffer => {
  const bytes = idToBytes(id)
  return Buffer.from(bytes.buffer, bytes.byteOffset, 16)
}
export const fromBin = (b: Bin): Id => bytesToId(b)
const opt = <T>(v: T | null | undefined): T | undefined => (v === null ? undefined : v)
const num = (v: number | string | null | undefined): number | undefined =>
  v === null || v === undefined ? undefined : Number(v)

export interface JobRow {
  id: Bin
  order_id: Bin
  idx: number
  name: string
  spec: number | string
  state: string
  attempt: number
  step: number | null
  iteration: number | null
  reason: string | null
  retry_at: number | string | null
}

export const jobColumns =
  'id, order_id, idx, name, spec, state, attempt, step, iteration, reason, retry_at'

/**
 * What a job runs and under which rules, stored once per distinct value in `job_specs`: every
 * order of a packet shares its jobs' specs, so a job row stays small and a restart reads each
 * spec once.
 */
export interface JobSpec {
  op: Job['op']
  policy: Job['policy']
  uses: Job['uses']
  failure: Job['failure']
  timeoutMs: number | undefined
  cacheKey: string | undefined
}

/** A job's spec as stored text. */
export function specBody(j: Job): string {
  return JSON.stringify([
    j.op,
    j.policy,
    j.uses,
    j.failure,
    j.timeoutMs ?? null,
    j.cacheKey ?? null,
  ])
}

/** The key a spec is stored under: a digest of its text. */
export function specHash(body: string): string {
  return createHash('sha256').update(body).digest('base64')
}

export function decodeSpec(body: string): JobSpec {
  const [op, policy, uses, failure, timeoutMs, cacheKey] = JSON.parse(body) as [
    Job['op'],
    Job['policy'],
    Job['uses'],
    Job['failure'],
    number | null,
    string | null,
  ]
  return {
    op,
    policy,
    uses,
    failure,
    timeoutMs: timeoutMs ?? undefined,
    cacheKey: cacheKey ?? undefined,
  }
}

/** Spec ids by body, so a store looks each spec up once. Forgets all when it grows large. */
export class SpecIds {
  private readonly ids = new Map<string, number>()
  get(body: string): number | undefined {
    return this.ids.get(body)
  }
  set(body: string, id: number): void {
    if (this.ids.size >= 50_000) this.ids.clear()
    this.ids.set(body, id)
  }
  /** After a rolled-back commit: the ids it learnt may name rows that were never stored. */
  clear(): void {
    this.ids.clear()
  }
}

export function jobValues(j: Job, spec: number): unknown[] {
  return [
    toBin(j.id),
    toBin(j.orderId),
    j.index,
    j.name,
    spec,
    j.state,
    j.attempt,
    j.step ?? null,
    j.iteration ?? null,
    j.reason ?? null,
    j.retryAt ?? null,
  ]
}

/** An id from its 32 lower-case hex digits, as SQL's `lower(hex(id))` gives them. */
export function hexToId(h: string): Id {
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`
}

/**
 * The columns of a job read as an array, ids as hex: the fast form for reading millions of
 * jobs at a restart, where objects and buffers per row cost more than the read itself.
 */
export const jobArrayColumns =
  'lower(hex(id)), idx, name, spec, state, attempt, step, iteration, reason, retry_at'

export function decodeJobArray(r: unknown[], specs: SpecMap, orderId: Id): Job {
  const spec = specs.get(Number(r[3]))
  if (spec === undefined) throw new Error(`job spec ${String(r[3])} is missing`)
  const job: Job = {
    id: hexToId(r[0] as string),
    orderId,
    index: r[1] as number,
    name: r[2] as string,
    op: spec.op,
    policy: spec.policy,
    uses: spec.uses,
    failure: spec.failure,
    timeoutMs: spec.timeoutMs,
    state: r[4] as Job['state'],
    attempt: r[5] as number,
  }
  if (spec.cacheKey !== undefined) job.cacheKey = spec.cacheKey
  if (r[6] !== null) job.step = r[6] as number
  if (r[7] !== null) job.iteration = r[7] as number
  if (r[8] !== null) job.reason = r[8] as string
  if (r[9] !== null) job.retryAt = Number(r[9])
  return job
}

/** Specs by id, as a read decodes them. */
export type SpecMap = ReadonlyMap<number, JobSpec>

export function specMap(rows: readonly { id: number | string; body: string }[]): SpecMap {
  return new Map(rows.map((r) => [Number(r.id), decodeSpec(r.body)]))
}

export function decodeJob(r: JobRow, specs: SpecMap, orderId?: Id): Job {
  const spec = specs.get(Number(r.spec))
  if (spec === undefined) throw new Error(`job spec ${r.spec} is missing`)
  const job: Job = {
    id: fromBin(r.id),
    orderId: orderId ?? fromBin(r.order_id),
    index: r.idx,
    name: r.name,
    op: spec.op,
    policy: spec.policy,
    uses: spec.uses,
    failure: spec.failure,
    timeoutMs: spec.timeoutMs,
    state: r.state as Job['state'],
    attempt: r.attempt,
  }
  if (spec.cacheKey !== undefined) job.cacheKey = spec.cacheKey
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
    t.target.url ?? null,
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
  url: string | null
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
      ...(r.url === null ? {} : { url: r.url }),
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
