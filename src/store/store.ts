/**
 * The store: Lockstep's durable state behind one interface, with two backends (SQLite embedded,
 * PostgreSQL to scale out). No connection or transaction type appears here: each backend owns
 * its connections, and one call is one transaction.
 */
import type { Id } from '../core/ids.ts'
import type { Artifact, Job, Lock, Order, OrderState, Target } from '../core/model.ts'
import type { PacketRecord } from '../core/engine/engine.ts'
import type { AttemptState, JobCounts, TargetFulfilment } from '../core/engine/fulfilment.ts'

/** How the list is sorted: newest first, or highest priority first and newest among equals. */
export type OrderSort = 'created' | 'priority'

/** Where a page starts: after the order with this key, in the list's sort. */
export interface OrderKey {
  id: Id
  priority: number
}

/** Which orders {@link Store.findOrders} reads. */
export interface OrderQuery {
  /** Only orders in one of these states. */
  states?: readonly OrderState[] | undefined
  /** Only this owner's orders. */
  owner?: string | undefined
  /**
   * Only orders whose source name (packet name or artifact project) holds this text, ignoring
   * case, or whose id starts with it (a prefix of the id's hex digits, dashes optional).
   */
  text?: string | undefined
  /** @default 'created' */
  sort?: OrderSort | undefined
  /** The most orders to read. */
  limit: number
  /** Start after this order: the last of the previous page. */
  after?: OrderKey | undefined
}

/** What a backend can do; tests and the service ask this, never the backend's name. */
export interface StoreCapabilities {
  /** Several processes may open the same store at once (PostgreSQL). */
  sharedAcrossProcesses: boolean
}

/** An artifact as submitted, kept beside the order that binds it. */
export interface ArtifactRecord {
  id: Id
  artifact: Artifact
  createdAt: number
}

/** An order with what its fulfilment needs beyond the order itself. */
export interface StoredOrder {
  order: Order
  startedAt?: number
  endedAt?: number
  reason?: string
  /** For artifacts with `iterate` steps: how many iterations; 0 otherwise. */
  iterations: number
}

/**
 * A stored order with its jobs counted by state: all a fulfilment needs, so that reading one
 * order, or listing many, costs one query whatever the number of orders.
 */
export interface OrderWithCounts extends StoredOrder {
  counts: JobCounts
  /** Every job of the order, whatever its state. */
  total: number
}

/** One page of the order list (see {@link Store.findOrders}). */
export interface OrderPage {
  orders: OrderWithCounts[]
  /** Every order the query's filters match, on every page. */
  total: number
  /** Where the next page starts; absent on the last page. */
  next?: OrderKey
}

/** The fields of an order that change after it is stored. */
export interface OrderUpdate {
  id: Id
  state: OrderState
  startedAt?: number
  endedAt?: number
  reason?: string
}

/** The fields of a job that change after it is stored. */
export interface JobUpdate {
  id: Id
  state: Job['state']
  attempt: number
  reason?: string
  retryAt?: number
}

/** One product in one target's cache. */
export interface ProductLocation {
  productId: string
  targetId: string
  /** The product's content hash, when known (see `TargetFulfilment.productHash`). */
  hash?: string
}

/** Which of a target's attempts to read (see {@link Store.attemptsOnTarget}). */
export interface AttemptsOnTarget {
  /** The most attempts to read. */
  limit: number
  /** Only attempts in this state. */
  state?: AttemptState | undefined
  /** Only attempts of this owner's orders. */
  owner?: string | undefined
}

/**
 * A row of the event log. `seq` is its place in the log, given by the one writer (the service
 * numbers each event as it is recorded, from the last stored one on): an event stream can name
 * an event before it is stored, and a client resumes after the last it heard.
 */
export interface EventRow {
  seq: number
  at: number
  type: string
  orderId?: Id
  jobId?: Id
  /** The event's fields as JSON. */
  body: string
}

/** A stored event, with its place in the log. */
export type StoredEvent = EventRow

/**
 * Everything one group commit writes, in one transaction. Rows hold the state at the moment the
 * batch was taken, so applying them in the order of the fields below is always consistent.
 */
export interface Batch {
  packets: PacketRecord[]
  artifacts: ArtifactRecord[]
  /** New orders with all their jobs and locks. */
  orders: { stored: StoredOrder; jobs: Job[]; locks: Lock[] }[]
  orderUpdates: OrderUpdate[]
  jobUpdates: JobUpdate[]
  /** Attempts to insert or update. */
  attempts: TargetFulfilment[]
  /** Jobs whose outgoing locks are now released. */
  released: Id[]
  targets: { target: Target; live: boolean; at: number }[]
  /** Targets forgotten: their rows go. */
  targetsForgotten: string[]
  productsAdded: ProductLocation[]
  productsRemoved: ProductLocation[]
  /** Targets whose whole cache is gone (lost or left). */
  cachesDropped: string[]
  /** Unique resources taken (`holder` set) or freed (`holder` undefined). */
  holders: { key: string; holder: Id | undefined }[]
  events: EventRow[]
  /**
   * Kept with the commit, when set: a batch tried again after a fault (`retried`) whose token is
   * the last one stored has landed already, and is not written twice.
   */
  token?: string
  /** The batch failed once with a transient fault: the store checks its token first. */
  retried?: boolean
}

/** An empty {@link Batch}. */
export function emptyBatch(): Batch {
  return {
    packets: [],
    artifacts: [],
    orders: [],
    orderUpdates: [],
    jobUpdates: [],
    attempts: [],
    released: [],
    targets: [],
    targetsForgotten: [],
    productsAdded: [],
    productsRemoved: [],
    cachesDropped: [],
    holders: [],
    events: [],
  }
}

/** What a scheduler needs to carry on after a restart: everything still in flight. */
export interface Snapshot {
  packets: PacketRecord[]
  /** Orders still running, with their jobs, locks and attempts. */
  orders: { stored: StoredOrder; jobs: Job[]; locks: (Lock & { released: boolean })[] }[]
  attempts: TargetFulfilment[]
  targets: { target: Target; live: boolean }[]
  products: ProductLocation[]
  holders: { key: string; holder: Id }[]
  /** The `seq` of the last stored event (0 for an empty log): the next event is numbered after it. */
  lastEventSeq: number
}

/** The process that holds a store (see {@link Store.hold}). */
export interface StoreHolder {
  pid: number
  host: string
  /** When it took the store, in Unix milliseconds. */
  since: number
}

/** What the holder of a store hears. */
export interface HoldOptions {
  /**
   * The hold was lost (the database session that held it dropped). Until the next commit takes
   * it again, nothing is written; a commit that finds another holder throws STORE_HELD.
   */
  onLost?: (error: Error) => void
}

/** Durable state. Every method is one transaction; a resolved commit is on disk. */
export interface Store {
  readonly capabilities: StoreCapabilities
  /**
   * Takes the store for this process alone, for as long as it is open: one scheduler per store.
   * Throws STORE_HELD naming the holder (pid, host, since when) when another process or handle
   * holds it. A holder that dies, even by SIGKILL, lets go at once. `close()` lets go.
   */
  hold(options?: HoldOptions): Promise<void>
  /** Brings the schema up to date; returns its version. Safe to run twice, or at once from two processes. */
  migrate(): Promise<number>
  /** Writes a batch in one transaction. */
  commit(batch: Batch): Promise<void>
  /** Reads what is in flight, to rebuild the engine. */
  load(): Promise<Snapshot>
  /** An order, running or ended, with its job counts. */
  order(orderId: Id): Promise<OrderWithCounts | undefined>
  /**
   * The newest `limit` orders, newest first, each with its job counts as {@link order} gives them;
   * given an `owner`, only that owner's (read through an index: as cheap as the unfiltered list).
   */
  listOrders(limit: number, owner?: string): Promise<OrderWithCounts[]>
  /**
   * One page of the orders a query's filters match, in its sort, each with its job counts, and
   * how many orders match in all. Each page is an index range (see `order-pages.ts`); the count
   * reads every matching order's index entry, and the text search every order's row.
   */
  findOrders(query: OrderQuery): Promise<OrderPage>
  /** An order's jobs in their order. */
  jobs(orderId: Id): Promise<Job[]>
  /** One job, running or ended. */
  job(jobId: Id): Promise<Job | undefined>
  /** Every attempt of a job, first first. */
  attempts(jobId: Id): Promise<TargetFulfilment[]>
  /**
   * The attempts on one target, newest first (by when each started), as many as `limit` says;
   * read through an index on the target, so one target's history costs what it returns.
   */
  attemptsOnTarget(targetId: string, which: AttemptsOnTarget): Promise<TargetFulfilment[]>
  /** The artefacts each job of an order reported in its latest attempt, for the jobs that did. */
  artefacts(orderId: Id): Promise<{ jobId: Id; artefacts: string[] }[]>
  /** Where each lock stands, for audits. */
  locks(orderId: Id): Promise<(Lock & { released: boolean })[]>
  /**
   * Events after `afterSeq`, oldest first, at most `limit`; given an `orderId`, only that order's
   * (read through an index on the order, so one order's events cost what they return).
   */
  events(afterSeq: number, limit: number, orderId?: Id): Promise<StoredEvent[]>
  close(): Promise<void>
}
