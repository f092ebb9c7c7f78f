/**
 * The codecs between rows and domain objects, both directions, for both backends: row shapes
 * (`JobRow`, `OrderRow`, …), their column lists, the values a write binds and the decoders a read
 * uses. Ids are stored as 16-byte binaries; either driver gives them back as a Buffer.
 */
import { bytesToId, idToBytes } from '../core/ids.ts'
import type { Id } from '../core/ids.ts'
import type { Job, Lock, Order, Target } from '../core/model.ts'
import type { PacketRecord } from '../core/engine/engine.ts'
import type { TargetFulfilment } from '../core/engine/fulfilment.ts'
import type { SpecMap } from './job-specs.ts'
import type {
  ArtifactRecord,
  Batch,
  EventRow,
  JobUpdate,
  OrderUpdate,
  ProductLocation,
  StoredEvent,
  StoredOrder,
} from './store.ts'

/** A binary column as it comes back: Buffer from both drivers. */
export type Bin = Uint8Array

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

/** A job's row; `spec` is its spec's id (or what a writer turns into it). */
function jobValues(j: Job, spec: unknown, bin: BindId): unknown[] {
  return [
    bin(j.id),
    bin(j.orderId),
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

/**
 * SQLite's expression for the id in binary `column` as its text (`xxxxxxxx-xxxx-…`), made by
 * SQLite in one piece: at a restart with millions of ids, text joined from slices in JavaScript
 * costs a string per slice and a slower key in every map the id enters.
 */
export function idText(column: string): string {
  const part = (from: number, length: number) => `substr(hex(${column}), ${from}, ${length})`
  return `lower(${part(1, 8)} || '-' || ${part(9, 4)} || '-' || ${part(13, 4)} || '-' || ${part(17, 4)} || '-' || ${part(21, 12)})`
}

/**
 * The columns of a job read as an array, its id as text: the fast form for reading millions of
 * jobs at a restart, where objects and buffers per row cost more than the read itself.
 */
export const jobArrayColumns = `${idText('id')}, idx, name, spec, state, attempt, step, iteration, reason, retry_at`

export function decodeJobArray(r: unknown[], specs: SpecMap, orderId: Id): Job {
  const spec = specs.get(Number(r[3]))
  if (spec === undefined) throw new Error(`job spec ${String(r[3])} is missing`)
  const job: Job = {
    id: r[0] as Id,
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
  if (spec.project !== undefined) job.project = spec.project
  if (r[6] !== null) job.step = r[6] as number
  if (r[7] !== null) job.iteration = r[7] as number
  if (r[8] !== null) job.reason = r[8] as string
  if (r[9] !== null) job.retryAt = Number(r[9])
  return job
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
  if (spec.project !== undefined) job.project = spec.project
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
  sites: string | null
  source_name: string | null
}

export const orderColumns =
  'id, source_kind, source_id, priority, owner, creator, override, state, created_at, started_at, ended_at, reason, iterations, sites, source_name'

function orderValues(s: StoredOrder, bin: BindId): unknown[] {
  const o = s.order
  const sourceId = o.source.kind === 'packet' ? o.source.packetId : o.source.artifactId
  return [
    bin(o.id),
    o.source.kind,
    bin(sourceId),
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
    o.sites === undefined ? null : JSON.stringify(o.sites),
    o.source.name,
  ]
}

export function decodeOrder(r: OrderRow): StoredOrder {
  const sourceId = fromBin(r.source_id)
  // NULL only if a row escaped migration 8's backfill (its packet or artifact gone): no name.
  const name = r.source_name ?? ''
  const order: Order = {
    id: fromBin(r.id),
    source:
      r.source_kind === 'packet'
        ? { kind: 'packet', packetId: sourceId, name }
        : { kind: 'artifact', artifactId: sourceId, name },
    priority: r.priority,
    owner: r.owner,
    creator: r.creator,
    override: r.override === null ? undefined : (JSON.parse(r.override) as Order['override']),
    state: r.state as Order['state'],
    createdAt: Number(r.created_at),
  }
  if (r.sites !== null) order.sites = JSON.parse(r.sites) as Order['sites']
  const out: StoredOrder = { order, iterations: r.iterations }
  const startedAt = num(r.started_at)
  const endedAt = num(r.ended_at)
  if (startedAt !== undefined) out.startedAt = startedAt
  if (endedAt !== undefined) out.endedAt = endedAt
  if (r.reason !== null) out.reason = r.reason
  return out
}

/** How a backend binds an id: PostgreSQL as 16 bytes; SQLite's writer thread is sent the text. */
export type BindId = (id: Id) => unknown

/**
 * Row values for the writes both backends make, in the column order of their statements, with
 * ids bound by `bin`. PostgreSQL binds the bytes; the SQLite store sends its writer thread the
 * id's text, which crosses threads far cheaper than thousands of small buffers, and the thread
 * turns the columns its statements name as ids into bytes.
 */
export function rowCodec(bin: BindId) {
  return {
    job: (j: Job, spec: unknown) => jobValues(j, spec, bin),
    order: (s: StoredOrder) => orderValues(s, bin),
    attempt: (a: TargetFulfilment) => attemptValues(a, bin),
    packet: (p: PacketRecord): unknown[] => [
      bin(p.id),
      p.name,
      JSON.stringify(p.packet),
      p.createdAt,
      p.owner,
    ],
    artifact: (a: ArtifactRecord): unknown[] => [
      bin(a.id),
      a.artifact.project,
      JSON.stringify(a.artifact),
      a.createdAt,
    ],
    lock: (l: Lock): unknown[] => [bin(l.jobId), bin(l.nextId)],
    orderUpdate: (u: OrderUpdate): unknown[] => [
      bin(u.id),
      u.state,
      u.startedAt ?? null,
      u.endedAt ?? null,
      u.reason ?? null,
    ],
    jobUpdate: (u: JobUpdate): unknown[] => [
      bin(u.id),
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
      t.target.runs === undefined ? null : JSON.stringify(t.target.runs),
    ],
    product: (p: ProductLocation): unknown[] => [p.productId, p.targetId, p.hash ?? null],
    productKey: (p: ProductLocation): unknown[] => [p.productId, p.targetId],
    holder: (h: Batch['holders'][number]): unknown[] => [
      h.key,
      h.holder === undefined ? null : bin(h.holder),
    ],
    event: (e: EventRow): unknown[] => [
      e.seq,
      e.at,
      e.type,
      e.orderId === undefined ? null : bin(e.orderId),
      e.jobId === undefined ? null : bin(e.jobId),
      e.body,
    ],
  }
}

/** The values PostgreSQL binds: ids as bytes. */
export const binaryRows = rowCodec(toBin)

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
  product_hash: string | null
  /** A JSON array of URLs. */
  artefacts: string | null
  started_at: number | string | null
}

export const attemptColumns =
  'job_id, attempt, target, state, transitions, reason, exit_code, message, product, product_hash, artefacts, started_at'

function attemptValues(a: TargetFulfilment, bin: BindId): unknown[] {
  return [
    bin(a.jobId),
    a.attempt,
    a.target,
    a.state,
    JSON.stringify(a.transitions),
    a.reason ?? null,
    a.exitCode ?? null,
    a.message ?? null,
    a.product ?? null,
    a.productHash ?? null,
    a.artefacts === undefined ? null : JSON.stringify(a.artefacts),
    a.transitions[0]?.at ?? null,
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
  if (r.product_hash !== null) a.productHash = r.product_hash
  if (r.artefacts !== null) a.artefacts = JSON.parse(r.artefacts) as string[]
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
  runs: string | null
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
      ...(r.runs === null ? {} : { runs: JSON.parse(r.runs) as NonNullable<Target['runs']> }),
    },
    live: r.live === 1,
  }
}

export interface PacketRow {
  id: Bin
  name: string
  body: string
  created_at: number | string
  owner: string
}

export function decodePacket(r: PacketRow): PacketRecord {
  return {
    id: fromBin(r.id),
    name: r.name,
    owner: r.owner,
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

export interface LockRowDb {
  job_id: Bin
  next_id: Bin
  released: number
}

export function decodeLock(r: LockRowDb): Lock & { released: boolean } {
  return { jobId: fromBin(r.job_id), nextId: fromBin(r.next_id), released: r.released === 1 }
}
