/**
 * The engine: orders from submission to a final state. It turns packets and bound artifacts
 * into jobs joined by locks, releases locks as jobs succeed, hands ready jobs to the dispatch
 * core, follows every attempt (fulfilment), applies failure policies, and loses workers whose
 * leases run out. Pure and in memory: the scheduler service persists its event stream and
 * serves it.
 *
 * Invariants the tests hold it to: every order reaches a final state; no attempt starts after
 * its order ended; a job succeeds at most once, because a result is accepted only for the
 * job's current attempt on the target running it.
 */
import type { Clock } from '../clock.ts'
import { systemClock } from '../clock.ts'
import { ValidationError } from '../errors.ts'
import { IdGenerator } from '../ids.ts'
import type { Id } from '../ids.ts'
import type { Job, JobResult, OperationKind, Order, Target } from '../model.ts'
import { parseInput } from '../schema.ts'
import { targetRegistrationSchema } from '../protocol.ts'
import type { Assignment, JobInput, RunningAttempt, Stop, TargetRegistration } from '../protocol.ts'
import { Scheduler } from '../dispatch/scheduler.ts'
import type { QueueDepths } from '../dispatch/scheduler.ts'
import { EngineEvents } from './events.ts'
import type { EngineListener } from './events.ts'
import type { JobCounts, OrderFulfilment, TargetFulfilment } from './fulfilment.ts'
import { fulfilmentOf, inputsOf } from './order-record.ts'
import type { JobRecord } from './order-record.ts'
import { capabilitiesOf, registeredTarget } from './registration.ts'
import { OrdersInFlight } from './orders-in-flight.ts'
import type { JobWait } from './orders-in-flight.ts'
import { StoredPackets } from './stored-packets.ts'
import type { PacketAccess, PacketRecord } from './stored-packets.ts'
import { ProductLedger } from './product-ledger.ts'
import { CacheReports } from './cache-reports.ts'
import { compileLimits } from '../limits.ts'
import type { LimitsOptions } from '../limits.ts'
import { recover } from './recovery.ts'
import type { EngineState } from './recovery.ts'
import { Submissions } from './submissions.ts'
import { TargetRegistry } from './target-registry.ts'
import type { RegisteredTarget } from './target-registry.ts'

export type { EngineState, JobWait, PacketAccess, PacketRecord }

/** Options of an {@link Engine}. */
export interface EngineOptions {
  /** @default the system clock */
  clock?: Clock
  /** How long a ready job waits for the targets holding its product. @default 500 */
  cacheTimeoutMs?: number
  /** How long it then waits for the targets holding its inputs. @default 500 */
  depsTimeoutMs?: number
  /** A worker silent for this long is lost. @default 30000 */
  leaseMs?: number
  /** The id of the built-in target that runs initiator jobs. @default 'initiator' */
  initiator?: string
  /**
   * The operation kinds the initiator runs. It runs in the scheduler process, beside the store
   * and the scheduler's secrets, so `exec` there runs user code in the scheduler: an operator's
   * explicit opt-in (`lockstep server --initiator-exec`). A job of another kind strict to the
   * initiator waits, and its wait reason says so. @default ['builtin']
   */
  initiatorRuns?: readonly OperationKind[]
  /** Random numbers in [0, 1) for backoff jitter. @default Math.random */
  random?: () => number
  /** Makes the ids of orders, jobs and packets. */
  ids?: IdGenerator
  /** What one submission may bind to, and how many orders an owner may have in flight. */
  limits?: LimitsOptions
}

/**
 * Runs orders. Every method that changes state emits the events of the change before it
 * returns; listeners run synchronously, in registration order.
 *
 * The engine composes its parts: targets and their leases live in a {@link TargetRegistry}, the
 * orders in memory in {@link OrdersInFlight} (which moves their jobs through a `JobLifecycle`
 * and keeps the makers of products in `ProductClaims`), stored packets in {@link StoredPackets}.
 * Submissions are built by pure functions (`submission.ts`), and what follows a failure is
 * decided by one (`decideAfterFailure`).
 */
export class Engine {
  private readonly clock: Clock
  private readonly ids: IdGenerator
  /** A worker silent this long is lost. */
  readonly leaseMs: number
  readonly initiator: string
  private readonly dispatch: Scheduler
  private readonly events: EngineEvents
  private readonly registry: TargetRegistry<JobRecord>
  private readonly orders: OrdersInFlight
  private readonly packets = new StoredPackets()
  private readonly ledger = new ProductLedger()
  private readonly cacheReports: CacheReports
  private readonly submissions: Submissions
  private stopped = false

  constructor(options: EngineOptions = {}) {
    const clock = (this.clock = options.clock ?? systemClock)
    this.ids = options.ids ?? new IdGenerator()
    this.leaseMs = options.leaseMs ?? 30_000
    this.initiator = options.initiator ?? 'initiator'
    const dispatch = (this.dispatch = new Scheduler({
      cacheTimeoutMs: options.cacheTimeoutMs ?? 500,
      depsTimeoutMs: options.depsTimeoutMs ?? 500,
      clock,
    }))
    const events = (this.events = new EngineEvents(clock))
    this.cacheReports = new CacheReports(this.ledger, dispatch, events)
    const random = options.random ?? Math.random
    const ledger = this.ledger
    const orders = (this.orders = new OrdersInFlight({ clock, random, dispatch, events, ledger }))
    this.registry = new TargetRegistry<JobRecord>(clock, {
      joined: (r) =>
        dispatch.registerWorker(r.target.id, {
          strictOnly: r.capabilities.strictOnly,
          ...(r.capabilities.runs === undefined ? {} : { runs: r.capabilities.runs }),
          ...(r.capabilities.refusal === undefined ? {} : { refusal: r.capabilities.refusal }),
        }),
      gone: (r, event) => {
        const held = dispatch.removeWorker(r.target.id)
        ledger.dropTarget(r.target.id)
        this.cacheReports.gone(r.target.id, held)
        events.emit(event, { targetId: r.target.id })
      },
      lost: (job, why) => orders.loseAttempt(job, why),
      undelivered: (job, targetId) => orders.notDelivered(job, targetId),
    })
    this.submissions = new Submissions({
      clock,
      ids: this.ids,
      events,
      packets: this.packets,
      orders,
      initiator: this.initiator,
      sitesOf: (project) => this.registry.sitesOf(project),
      limits: compileLimits(options.limits),
    })
    const initiatorRuns = capabilitiesOf('initiator', this.leaseMs, options.initiatorRuns)
    if (!initiatorRuns.runs.includes('exec')) {
      initiatorRuns.refusal =
        'the initiator runs builtins only; start the server with --initiator-exec'
    }
    this.registry.register(
      { id: this.initiator, kind: 'initiator', availability: 0, labels: {}, projects: [] },
      initiatorRuns,
    )
  }

  /** Listens to every event; returns a function that stops listening. */
  on(listener: EngineListener): () => void {
    return this.events.on(listener)
  }

  // ---- targets ----

  /**
   * Registers a worker or a push target, or registers one again: after a loss it is live
   * again, and after an agent restart every attempt it no longer runs (not in `running`) is lost.
   */
  registerTarget(input: TargetRegistration): Target {
    const spec = parseInput(targetRegistrationSchema, input)
    if (spec.id === this.initiator) {
      throw new ValidationError([
        { path: 'id', message: `'${spec.id}' is the initiator's id; choose another` },
      ])
    }
    const target = registeredTarget(spec)
    const record = this.registry.register(
      target,
      capabilitiesOf(target.kind, this.leaseMs, spec.runs),
    )
    this.events.emit('target:registered', { target })
    this.cacheReports.registered(spec.id, spec.cached ?? [])
    this.registry.restarted(record, spec.running ?? [])
    return target
  }

  /** Renews a worker's lease. Throws TARGET_NOT_FOUND for a worker that is unknown or lost. */
  heartbeat(targetId: string, running?: readonly RunningAttempt[]): void {
    // An attempt the worker does not say it runs is lost once it had a lease's time to arrive.
    this.registry.heartbeat(this.registry.worker(targetId), running, this.leaseMs)
  }

  /** A target leaves: its running attempts fail with `worker-lost` and follow their policy. */
  removeTarget(targetId: string): void {
    this.registry.remove(this.registry.worker(targetId))
  }

  /**
   * The attempts a worker must stop (cancelled, timed out, or their order ended), each told
   * once. TARGET_NOT_FOUND for a target that is unknown or lost.
   */
  takeStops(targetId: string): Stop[] {
    return this.registry.takeStops(this.registry.worker(targetId))
  }

  /** Forgets a target that left or was lost: no longer a site of its projects (TARGET_LIVE if live). */
  forgetTarget(targetId: string): void {
    this.registry.forget(targetId)
    this.cacheReports.forgotten(targetId)
    this.events.emit('target:forgotten', { targetId })
  }

  /** Says where a target serves its products (the initiator learns it once the server listens). */
  setTargetUrl(targetId: string, url: string): void {
    this.registry.setTargetUrl(targetId, url)
  }

  /** A registered target. */
  target(targetId: string): Target | undefined {
    return this.registry.target(targetId)
  }

  /** Every registered target, with whether it is live. */
  targets(): RegisteredTarget[] {
    return this.registry.targets()
  }

  /** The records of the attempts running on a target now; none for a target it does not know. */
  runningOn(targetId: string): TargetFulfilment[] {
    const running = this.registry.get(targetId)?.running
    return running === undefined ? [] : [...running.values()].map((job) => job.current!)
  }

  /**
   * Records products a target gained or lost from its cache; an addition is believed only as
   * `cache-reports.ts` says, any other is ignored and recorded as `cache:refused`.
   */
  reportCache(targetId: string, added: readonly string[], removed: readonly string[] = []): void {
    this.registry.live(targetId)
    this.cacheReports.reported(targetId, added, removed)
  }

  /**
   * A target is sent to fetch products outside an assignment (the scheduler bringing an order's
   * final products home): its announcement of them will be believed, as an input's would.
   */
  sendToFetch(targetId: string, productIds: readonly string[]): void {
    this.cacheReports.sendToFetch(targetId, productIds)
  }

  /** The content hash of a product, when its maker reported one. */
  productHash(productId: string): string | undefined {
    return this.ledger.hash(productId)
  }

  // ---- submission ----

  /**
   * Checks and stores a packet of `owner`; a name the owner used before gets a new version under
   * a new id. Owners' names are apart: ana's `p` is not bob's `p`.
   */
  createPacket(input: unknown, owner: string): PacketRecord {
    return this.submissions.createPacket(input, owner)
  }

  /** A stored packet by id, whoever owns it. */
  packet(id: string): PacketRecord | undefined {
    return this.packets.byIdOnly(id)
  }

  /**
   * Orders a stored packet: by id, or by name among the submitter's own packets (`every-owner`
   * access, an admin's, reaches any). Another owner's packet is PACKET_NOT_FOUND.
   */
  orderPacket(
    packetRef: string,
    options: unknown,
    submitter: string,
    access: PacketAccess = 'own',
  ): OrderFulfilment {
    return this.submissions.orderPacket(packetRef, options, submitter, access)
  }

  /** Stores a packet and orders it once; a bad order leaves no packet behind. */
  submitPacket(input: unknown, options: unknown, submitter: string): OrderFulfilment {
    return this.submissions.submitPacket(input, options, submitter)
  }

  /**
   * Binds an artifact over the live workers that hold its project's data (in id order) and the
   * initiator, and orders it: NO_WORKER_FOR_PROJECT when no worker holds the data, SITES_OFFLINE
   * while some are offline (unless the order's `minSites` are live).
   */
  submitArtifact(input: unknown, options: unknown, submitter: string): OrderFulfilment {
    return this.submissions.submitArtifact(input, options, submitter)
  }

  // ---- dispatch ----

  /** Hands up to `max` jobs to a pulling target and starts their attempts. */
  pick(targetId: string, max: number): Assignment[] {
    const record = this.registry.live(targetId)
    const out: Assignment[] = []
    while (out.length < max && !this.stopped) {
      const pending = this.dispatch.tryPickJob(targetId)
      if (pending === null) break
      out.push(this.orders.startAttempt(pending.job.id, record))
    }
    return out
  }

  /** One scheduling cycle for push targets: free slots per target in, started attempts out. */
  cycle(availability: ReadonlyMap<string, number>): Assignment[] {
    const live = new Map<string, number>()
    for (const [id, n] of availability) if (this.registry.isLive(id)) live.set(id, n)
    return this.dispatch
      .cycle(live)
      .map((a) => this.orders.startAttempt(a.jobId, this.registry.get(a.target)!))
  }

  /**
   * Records the result of an attempt. Throws STALE_ATTEMPT when the attempt is not the job's
   * current one on this target (it was retried, lost, cancelled or timed out), so a job is
   * never recorded as succeeded twice.
   */
  complete(targetId: string, jobId: Id, attempt: number, result: JobResult): void {
    this.orders.complete(targetId, jobId, attempt, result)
  }

  // ---- cancellation ----

  /**
   * Cancels an order in any state: waiting jobs are cancelled, running attempts are told to
   * stop. Cancelling a cancelled order does nothing; a succeeded or failed one is ALREADY_FINAL.
   */
  cancelOrder(orderId: Id, reason = 'cancelled by request'): OrderFulfilment {
    this.orders.cancelOrder(orderId, reason)
    return this.fulfilment(orderId)
  }

  /**
   * Cancels one job in any state but a final one: a running attempt is told to stop, and the
   * jobs that wait on it are skipped; the rest of the order runs on.
   */
  cancelJob(jobId: Id, reason = 'cancelled by request'): Job {
    return this.orders.cancelJob(jobId, reason)
  }

  // ---- recovery ----

  /** Rebuilds a fresh engine from stored state (`recovery.ts`), emitting nothing. */
  restore(state: EngineState): void {
    const { initiator, leaseMs, packets, registry, dispatch, ledger, orders } = this
    recover({ initiator, leaseMs, packets, registry, dispatch, ledger, orders }, state)
  }

  // ---- queries ----

  order(orderId: Id): Order | undefined {
    return this.orders.order(orderId)?.order
  }

  /** Every order, oldest first. */
  listOrders(): Order[] {
    return this.orders.list()
  }

  fulfilment(orderId: Id): OrderFulfilment {
    return fulfilmentOf(this.orders.orderRecord(orderId))
  }

  /** When the order's first attempt started; undefined before. */
  orderStartedAt(orderId: Id): number | undefined {
    return this.orders.order(orderId)?.startedAt
  }

  job(jobId: Id): Job | undefined {
    return this.orders.job(jobId)?.job
  }

  /** An order's jobs, in their order in the packet or artifact. */
  jobs(orderId: Id): Job[] {
    return this.orders.orderRecord(orderId).jobs.map((j) => j.job)
  }

  /** Every attempt of a job, first first. */
  attempts(jobId: Id): readonly TargetFulfilment[] {
    return this.orders.jobRecord(jobId).attempts
  }

  /** The products a job reads and where they are. */
  inputs(jobId: Id): JobInput[] {
    return inputsOf(
      this.orders.jobRecord(jobId),
      (productId) => this.dispatch.holders(productId),
      (productId) => this.ledger.hash(productId),
    )
  }

  /** Every live target holding a product. */
  holders(productId: string): string[] {
    return this.dispatch.holders(productId)
  }

  /**
   * Counts for metrics: jobs by state over the orders in memory, the dispatch queues, and the
   * announced products that were not believed since the engine started.
   */
  stats(): {
    jobs: JobCounts
    queued: number
    targets: number
    running: number
    refusedAnnouncements: number
  } {
    const d = this.dispatch.stats()
    const refusedAnnouncements = this.ledger.refused
    return {
      jobs: this.orders.counts(),
      queued: d.waiting,
      targets: d.targets,
      running: d.running,
      refusedAnnouncements,
    }
  }

  /** How many jobs wait in each dispatch queue: O(queued), for reports. */
  queueDepths(): QueueDepths {
    return this.dispatch.queueDepths()
  }

  /** Any live target holding a job's product. */
  locateArtifact(jobId: Id): string | undefined {
    const job = this.orders.job(jobId)
    return this.dispatch.locateArtifact(job === undefined ? jobId : job.productId)
  }

  /** Why a job has not started yet; undefined once it runs or has ended. */
  explain(jobId: Id): JobWait | undefined {
    return this.orders.explain(jobId)
  }

  /**
   * Drops an ended order and its jobs from memory, once the store holds them: the engine keeps
   * what is in flight, the store keeps history. Refuses an order still running.
   */
  forgetOrder(orderId: Id): void {
    this.orders.forget(orderId)
  }

  /** Ends every timer; the engine takes no more work. */
  stop(): void {
    this.stopped = true
    this.dispatch.stop()
    this.registry.stop()
    this.orders.stop()
  }
}
