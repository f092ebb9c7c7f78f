/**
 * The scheduler service: the engine, made durable, behind one front door. Every write changes the
 * engine at once and answers only when what it changed is stored (group commit); every read goes
 * through the read model. On start it rebuilds the engine from the store, so a scheduler killed at
 * any instant carries on where its last commit left it. Nothing outside this folder reaches the
 * engine.
 *
 * Rooms: `group-commit.ts` (durability), `worker-protocol.ts` (the heartbeat), `queries.ts` (the
 * read model), `journal.ts` (events into store batches).
 */
import type { Clock } from '../core/clock.ts'
import { systemClock } from '../core/clock.ts'
import { Engine } from '../core/engine/engine.ts'
import type { JobWait, PacketAccess, PacketRecord } from '../core/engine/engine.ts'
import type { EngineEvent } from '../core/engine/events.ts'
import type { OrderFulfilment, TargetFulfilment } from '../core/engine/fulfilment.ts'
import { LockstepError } from '../core/errors.ts'
import { isId } from '../core/ids.ts'
import type { Id } from '../core/ids.ts'
import type { Job, JobResult, Lock, Order, Target } from '../core/model.ts'
import type {
  Assignment,
  HeartbeatInput,
  HeartbeatReply,
  RunningAttempt,
  TargetRegistration,
} from '../core/protocol.ts'
import { describeFault, guardedReads } from '../store/faults.ts'
import type { AttemptsOnTarget, Batch, OrderQuery, Store, StoredEvent } from '../store/store.ts'
import { CapabilitySigner } from './capabilities.ts'
import type { CapabilityKey } from './capabilities.ts'
import { GroupCommit, logStoreFault } from './group-commit.ts'
import type { StoreStatus } from './group-commit.ts'
import { Journal } from './journal.ts'
import { Queries } from './queries.ts'
import type {
  JobDetail,
  ListedJob,
  OrderPage,
  Overview,
  ProductHolder,
  ServiceStats,
  TargetStatus,
} from './queries.ts'
import { SiteWaits } from './site-waits.ts'
import { StoredEvents } from './stored-events.ts'
import type { StoredListener } from './stored-events.ts'
import { WorkerProtocol } from './worker-protocol.ts'
import type { CacheChanges, SchedulerServiceOptions } from './service-options.ts'
import { StatsHistory } from './stats-history.ts'
import type { StatsPoint } from './stats-history.ts'

export type { CacheChanges, SchedulerServiceOptions } from './service-options.ts'

const ORDER_ENDED = /^order:(succeeded|failed|cancelled)$/

export class SchedulerService {
  private readonly engine: Engine
  private readonly clock: Clock
  private readonly siteWaits: SiteWaits
  /** The durable truth, for inspection; writes go through the service. */
  readonly store: Store
  private readonly journal = new Journal()
  private readonly commit: GroupCommit
  private readonly workers: WorkerProtocol
  private readonly capabilities: CapabilitySigner
  private readonly queries: Queries
  private readonly onFatal: ((error: unknown) => void) | undefined
  private readonly events: StoredEvents
  private readonly history: StatsHistory
  private closed = false

  private constructor(options: SchedulerServiceOptions) {
    this.store = options.store
    this.onFatal = options.onFatal
    this.events = new StoredEvents(options.onListenerError)
    this.clock = options.clock ?? systemClock
    this.siteWaits = new SiteWaits(this.clock)
    this.engine = new Engine({ ...options.engine, clock: this.clock })
    const jobs = () => this.engine.stats().jobs
    this.history = new StatsHistory({
      clock: this.clock,
      jobs,
      intervalMs: options.statsIntervalMs,
    })
    this.commit = new GroupCommit({
      store: options.store,
      commitDelayMs: options.commitDelayMs,
      maxPending: options.maxPending,
      pending: () => this.journal.size,
      take: () => this.take(),
      committed: (batch) => this.committed(batch),
      measured: (ms) => this.history.committed(ms),
      failed: (error) => {
        this.engine.stop()
        this.onFatal?.(error)
      },
      faulted: (fault) =>
        (options.onStoreFault ?? logStoreFault)(
          fault === undefined ? undefined : describeFault(fault),
        ),
    })
    this.capabilities = new CapabilitySigner(options.clock ?? systemClock, options.capabilities)
    this.workers = new WorkerProtocol(this.engine, this.commit, this.capabilities)
    this.queries = new Queries(this.engine, guardedReads(options.store))
    this.engine.on((e) => this.record(e))
  }

  /** Migrates the store, rebuilds the engine from it, and stores what recovery changed. */
  static async start(options: SchedulerServiceOptions): Promise<SchedulerService> {
    // A hold lost before the service exists is told to it once it does.
    const lost: { to?: GroupCommit; early?: Error } = {}
    if (options.hold ?? true) {
      await options.store.hold({
        onLost: (e) => (lost.to === undefined ? (lost.early = e) : lost.to.storeFault(e)),
      })
    }
    await options.store.migrate()
    const snapshot = await options.store.load()
    const service = new SchedulerService(options)
    service.journal.numberAfter(snapshot.lastEventSeq)
    lost.to = service.commit
    if (lost.early !== undefined) service.commit.storeFault(lost.early)
    service.engine.restore(snapshot)
    await service.durable()
    return service
  }

  /** The id of the built-in target that runs artifacts' initiator jobs. */
  get initiator(): string {
    return this.engine.initiator
  }

  /**
   * Sends a target to fetch products outside an assignment: its report of them is believed, as
   * an input's would be. Nothing to store: like an assignment's grant, it lives until reported.
   */
  sendToFetch(targetId: string, productIds: readonly string[]): void {
    this.engine.sendToFetch(targetId, productIds)
  }

  /** The content hash of a product, when its maker reported one: what a fetched copy must match. */
  productHash(productId: string): string | undefined {
    return this.engine.productHash(productId)
  }

  /** A capability for `consumer` to fetch `productId` from the target holding it. */
  capability(productId: string, consumer: string): string {
    return this.capabilities.sign(productId, consumer)
  }

  /** The public half of the key that signs capabilities: workers check them with it. */
  get capabilityKey(): CapabilityKey {
    return this.capabilities.key
  }

  /** A worker silent this long is lost. */
  get leaseMs(): number {
    return this.engine.leaseMs
  }

  /**
   * Listens to every event once it is stored, in order, with its row of the log. An event
   * recorded but not yet stored when `on` is called may be missed: `durable()` after `on` and a
   * read of {@link storedEvents} cover it.
   */
  on(listener: StoredListener): () => void {
    return this.events.on(listener)
  }

  // ---- writes: each answers once its change is stored ----

  /** Stores a packet of `owner`'s. */
  createPacket(input: unknown, owner: string): Promise<PacketRecord> {
    return this.commit.apply(() => this.engine.createPacket(input, owner))
  }

  /** Orders a stored packet the submitter reaches: its own, or any with `every-owner` access. */
  orderPacket(
    packetRef: string,
    options: unknown,
    submitter: string,
    access: PacketAccess = 'own',
  ): Promise<OrderFulfilment> {
    return this.commit.apply(() => this.engine.orderPacket(packetRef, options, submitter, access))
  }

  submitPacket(input: unknown, options: unknown, submitter: string): Promise<OrderFulfilment> {
    return this.commit.apply(() => this.engine.submitPacket(input, options, submitter))
  }

  /**
   * Binds and orders an artifact. While sites that hold its data are offline, an order with
   * `waitForSitesMs` waits for them (binding again whenever a target registers) and is answered
   * once bound, or refused with SITES_OFFLINE when the time is up.
   */
  submitArtifact(input: unknown, options: unknown, submitter: string): Promise<OrderFulfilment> {
    return this.siteWaits.retrying(
      () => this.commit.apply(() => this.engine.submitArtifact(input, options, submitter)),
      () => this.closed,
    )
  }

  async cancelOrder(orderId: Id, reason?: string): Promise<OrderFulfilment> {
    this.commit.check()
    if (this.engine.order(orderId) === undefined) {
      const order = await this.queries.order(orderId)
      if (order.state === 'cancelled') return this.queries.fulfilment(orderId)
      throw new LockstepError('ALREADY_FINAL', `order ${orderId} has already ${order.state}`)
    }
    return this.commit.apply(() => this.engine.cancelOrder(orderId, reason))
  }

  async cancelJob(jobId: Id, reason?: string): Promise<Job> {
    this.commit.check()
    if (this.engine.job(jobId) === undefined) {
      const job = await this.queries.job(jobId)
      throw new LockstepError('ALREADY_FINAL', `job ${jobId} has already ${job.state}`)
    }
    return this.commit.apply(() => this.engine.cancelJob(jobId, reason))
  }

  registerTarget(input: TargetRegistration): Promise<Target> {
    return this.commit.apply(() => this.engine.registerTarget(input))
  }

  removeTarget(targetId: string): Promise<void> {
    return this.commit.apply(() => this.engine.removeTarget(targetId))
  }

  /** Forgets a target that left or was lost (TARGET_LIVE while live): no longer a site. */
  forgetTarget(targetId: string): Promise<void> {
    return this.commit.apply(() => this.engine.forgetTarget(targetId))
  }

  /** Says where a target serves its products (an in-process target learns it once the server listens). */
  setTargetUrl(targetId: string, url: string): void {
    this.engine.setTargetUrl(targetId, url)
  }

  /**
   * A worker's one call: its results and cache changes in, up to `free` new jobs and the
   * attempts it should stop out. Answers once all of it is stored.
   */
  heartbeat(
    targetId: string,
    input: HeartbeatInput = {},
    signal?: AbortSignal,
  ): Promise<HeartbeatReply> {
    return this.workers.heartbeat(targetId, input, signal)
  }

  /** One scheduling cycle for push targets; the starts are stored before it returns. */
  async cycle(availability: ReadonlyMap<string, number>): Promise<Assignment[]> {
    const started = await this.commit.apply(() => this.engine.cycle(availability))
    return this.capabilities.attach(started)
  }

  /**
   * A push target's result for one attempt, with what it added to or evicted from its cache.
   * Throws STALE_ATTEMPT for an attempt that is not current; answers once the result is stored.
   */
  complete(
    targetId: string,
    assignment: { jobId: Id; attempt: number },
    result: JobResult,
    cache: CacheChanges = {},
  ): Promise<void> {
    return this.commit.apply(() => {
      const added = cache.added ?? []
      const removed = cache.removed ?? []
      if (added.length + removed.length > 0) this.engine.reportCache(targetId, added, removed)
      this.engine.complete(targetId, assignment.jobId, assignment.attempt, result)
    })
  }

  /**
   * What a push target's cache gained or lost outside an attempt (the initiator bringing an
   * order's products home). Answers once it is stored.
   */
  reportCache(targetId: string, cache: CacheChanges): Promise<void> {
    return this.commit.apply(() =>
      this.engine.reportCache(targetId, cache.added ?? [], cache.removed ?? []),
    )
  }

  // ---- reads: the read model ----
  // An `owner` scopes a read to that owner's orders: another owner's order or job is not found,
  // exactly as one that does not exist. Without it, every order is read (admins, viewers).

  order(orderId: Id, owner?: string): Promise<Order> {
    return this.queries.order(orderId, owner)
  }

  fulfilment(orderId: Id): Promise<OrderFulfilment> {
    return this.queries.fulfilment(orderId)
  }

  /** Orders with their fulfilment, newest first: every order, or one owner's. */
  listOrders(limit: number, owner?: string): Promise<OrderFulfilment[]> {
    return this.queries.listOrders(limit, owner)
  }

  /** One page of the orders a query matches, with their fulfilment, and how many match. */
  findOrders(query: OrderQuery): Promise<OrderPage<OrderFulfilment>> {
    return this.queries.findOrders(query)
  }

  jobs(orderId: Id): Promise<ListedJob[]> {
    return this.queries.jobs(orderId)
  }

  /** An order's locks: which job's success lets which start. */
  locks(orderId: Id): Promise<Lock[]> {
    return this.queries.locks(orderId)
  }

  job(jobId: Id, owner?: string): Promise<Job> {
    return this.queries.job(jobId, owner)
  }

  attempts(jobId: Id): Promise<TargetFulfilment[]> {
    return this.queries.attempts(jobId)
  }

  jobDetail(jobId: Id, owner?: string): Promise<JobDetail> {
    return this.queries.jobDetail(jobId, owner)
  }

  explain(jobId: Id): JobWait | undefined {
    return isId(jobId) ? this.queries.explain(jobId) : undefined
  }

  /** The log's events after `afterSeq`, oldest first, at most `limit`; one order's when given. */
  storedEvents(afterSeq: number, limit: number, orderId?: Id): Promise<StoredEvent[]> {
    return this.queries.storedEvents(afterSeq, limit, orderId)
  }

  /** Who owns an order in flight; undefined once it has ended and left memory. */
  orderOwner(orderId: Id): string | undefined {
    return this.engine.order(orderId)?.owner
  }

  /** Every registered target, with whether it is live and any problem its driver reported. */
  targets(): TargetStatus[] {
    return this.queries.targets()
  }

  /**
   * Says why a push target takes no work now (its driver cannot reach it), or, with undefined,
   * that it is healthy again. Kept in memory: a restarted driver says it again.
   */
  reportProblem(targetId: string, problem: string | undefined): void {
    this.queries.reportProblem(targetId, problem)
  }

  target(targetId: string): Target | undefined {
    return this.queries.target(targetId)
  }

  /**
   * The attempts the scheduler considers running on a target: what a push target's driver
   * adopts when it starts again. None for a target not registered.
   */
  runningOn(targetId: string): RunningAttempt[] {
    return this.queries.runningOn(targetId)
  }

  /**
   * The attempts on a target (its TargetFulfilments), newest first: at most `limit`, only in
   * `state` when given, only of `owner`'s orders when given. TARGET_NOT_FOUND for a target never
   * registered.
   */
  attemptsOnTarget(targetId: string, which: AttemptsOnTarget): Promise<TargetFulfilment[]> {
    return this.queries.attemptsOnTarget(targetId, which)
  }

  holders(productId: string): ProductHolder[] {
    return this.queries.holders(productId)
  }

  stats(): ServiceStats {
    return this.queries.stats()
  }

  /** The figures `GET /v1/stats` shows: jobs by state, queue depths, orders and live targets. */
  overview(): Overview {
    return this.queries.overview()
  }

  /** The last hour, one point per interval, oldest first: `GET /v1/stats/history`. */
  statsHistory(): StatsPoint[] {
    return this.history.read()
  }

  /** Whether the store takes writes now, and what waits for it: `GET /readyz`. */
  storeStatus(): StoreStatus {
    return this.commit.status
  }

  // ---- lifecycle ----

  /** Resolves once everything changed so far is stored. */
  durable(): Promise<void> {
    return this.commit.durable()
  }

  /** Stores what is pending, stops every timer and closes the store. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.siteWaits.wake()
    this.history.stop()
    this.commit.closing()
    this.workers.workArrived()
    this.engine.stop()
    await this.commit.close()
    await this.store.close()
  }

  /**
   * Stops at once, as a crash would: every timer ends and nothing pending is committed. The
   * store is left as the last commit left it, for a new service to start from.
   */
  abandon(): void {
    this.history.stop()
    this.commit.closing()
    this.workers.workArrived()
    this.engine.stop()
  }

  // ---- internals ----

  private record(e: EngineEvent): void {
    if (e.type === 'target:registered') this.siteWaits.wake()
    this.events.recorded(e, this.journal.add(e, this.engine))
    this.history.event(e.type)
    // A waiting heartbeat looks again: for a job to take, or for stops the engine now holds
    // for its worker. Push targets hear of both from the stored events.
    if (e.type === 'job:ready' || e.type === 'attempt:stop') this.workers.workArrived()
    this.commit.changed()
  }

  private take(): Batch {
    this.events.taken()
    return this.journal.take(this.engine)
  }

  private committed(batch: Batch): void {
    // Ended orders leave memory once stored: the engine keeps what is in flight.
    for (const e of batch.events) {
      if (e.orderId !== undefined && ORDER_ENDED.test(e.type)) {
        if (this.engine.order(e.orderId)?.state !== 'running') this.engine.forgetOrder(e.orderId)
      }
    }
    this.events.stored()
  }
}
