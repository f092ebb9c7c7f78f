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
import type { Clock, Timer } from '../clock.ts'
import { systemClock } from '../clock.ts'
import { LockstepError, ValidationError } from '../errors.ts'
import { decideAfterFailure, NOT_DELIVERED } from '../failure-policy.ts'
import { IdGenerator } from '../ids.ts'
import type { Id } from '../ids.ts'
import type {
  Artifact,
  Job,
  JobResult,
  JobState,
  Lock,
  Order,
  OrderState,
  Resource,
  Target,
} from '../model.ts'
import { finalJobStates, productOf } from '../model.ts'
import { compileOrderOptions } from '../order.ts'
import { compilePacket } from '../packet.ts'
import type { Packet } from '../packet.ts'
import { parseInput } from '../schema.ts'
import { targetRegistrationSchema } from '../protocol.ts'
import type { Assignment, JobInput, RunningAttempt, TargetRegistration } from '../protocol.ts'
import { Scheduler } from '../dispatch/scheduler.ts'
import type { ScheduleJobOptions, WaitReason } from '../dispatch/scheduler.ts'
import type { EngineEvent, EngineEventMap, EngineEventType, EngineListener } from './events.ts'
import { emptyCounts } from './fulfilment.ts'
import type { AttemptState, JobCounts, OrderFulfilment, TargetFulfilment } from './fulfilment.ts'
import { ProductClaims } from './product-claims.ts'
import { capabilitiesOf, registeredTarget } from './registration.ts'
import { artifactSubmission, compileArtifactOrder, packetSubmission } from './submission.ts'
import type { Submission } from './submission.ts'
import { StoredPackets } from './stored-packets.ts'
import type { PacketRecord } from './stored-packets.ts'
import { TargetRegistry } from './target-registry.ts'
import type { TargetRecord } from './target-registry.ts'

export type { PacketRecord }

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
  /** Random numbers in [0, 1) for backoff jitter. @default Math.random */
  random?: () => number
  /** Makes the ids of orders, jobs and packets. */
  ids?: IdGenerator
}

/** Why a job has not started: locks, a backoff, or a dispatch reason. */
export type JobWait =
  | { kind: 'locks'; waitingFor: Id[] }
  | { kind: 'backoff'; until: number }
  /** Another job with the same cache key makes the product; this one takes it when it is made. */
  | { kind: 'same-product'; job: Id }
  | WaitReason

/** What {@link Engine.restore} rebuilds from: the store's snapshot of what is in flight. */
export interface EngineState {
  packets: PacketRecord[]
  orders: {
    stored: { order: Order; startedAt?: number; iterations: number }
    jobs: Job[]
    locks: readonly Lock[]
  }[]
  attempts: TargetFulfilment[]
  targets: { target: Target; live: boolean }[]
  products: { productId: string; targetId: string }[]
}

class OrderRecord {
  readonly order: Order
  readonly jobs: JobRecord[] = []
  readonly counts: JobCounts = emptyCounts()
  startedAt: number | undefined = undefined
  endedAt: number | undefined = undefined
  reason: string | undefined = undefined
  /** For artifacts: how many iterations its `iterate` steps run; 1 without them. */
  iterations = 0
  constructor(order: Order) {
    this.order = order
  }
}

class JobRecord {
  readonly job: Job
  readonly order: OrderRecord
  /** The jobs it reads from: its incoming locks. */
  readonly inputs: JobRecord[] = []
  /** The jobs waiting on it: its outgoing locks. */
  readonly next: JobRecord[] = []
  /** Incoming locks not yet released. */
  held = 0
  /** Unique resource keys, as the dispatch core takes them. */
  readonly uses: string[]
  readonly resources: Resource[]
  readonly attempts: TargetFulfilment[] = []
  /** Targets where earlier attempts failed, for retries on another target. */
  avoid: string[] | undefined = undefined
  /** Attempts that never reached their target: they do not count against the policy. */
  undelivered = 0
  retryTimer: Timer | undefined = undefined
  timeoutTimer: Timer | undefined = undefined
  /** The target running the current attempt. */
  runningOn: TargetRecord<JobRecord> | undefined = undefined
  /** The product it makes; also its id in the dispatch core. */
  readonly productId: string

  constructor(job: Job, order: OrderRecord, resources: Resource[]) {
    this.job = job
    this.order = order
    this.productId = productOf(job)
    this.resources = resources
    this.uses =
      resources.length === 0 ? NO_KEYS : resources.filter((r) => r.unique).map((r) => r.key)
  }

  get current(): TargetFulfilment | undefined {
    return this.attempts[this.attempts.length - 1]
  }
}

const NO_KEYS: string[] = []

const ORDER_NOT_FINAL: ReadonlySet<OrderState> = new Set(['running'])

/**
 * Runs orders. Every method that changes state emits the events of the change before it
 * returns; listeners run synchronously, in registration order.
 */
export class Engine {
  private readonly clock: Clock
  private readonly random: () => number
  private readonly ids: IdGenerator
  /** A worker silent this long is lost. */
  readonly leaseMs: number
  readonly initiator: string
  private readonly dispatch: Scheduler
  private readonly listeners: EngineListener[] = []
  private readonly registry: TargetRegistry<JobRecord>
  private readonly packets = new StoredPackets()
  private readonly orders = new Map<Id, OrderRecord>()
  private readonly jobRecords = new Map<Id, JobRecord>()
  private readonly claims: ProductClaims<JobRecord>
  private stopped = false

  constructor(options: EngineOptions = {}) {
    this.clock = options.clock ?? systemClock
    this.random = options.random ?? Math.random
    this.ids = options.ids ?? new IdGenerator()
    this.leaseMs = options.leaseMs ?? 30_000
    this.initiator = options.initiator ?? 'initiator'
    this.dispatch = new Scheduler({
      cacheTimeoutMs: options.cacheTimeoutMs ?? 500,
      depsTimeoutMs: options.depsTimeoutMs ?? 500,
      clock: this.clock,
    })
    const dispatch = this.dispatch
    this.claims = new ProductClaims<JobRecord>(
      (job) => dispatch.scheduleJob(this.dispatchOptions(job)),
      (productId) => dispatch.locateArtifact(productId),
    )
    this.registry = new TargetRegistry<JobRecord>(this.clock, {
      joined: (r) =>
        dispatch.registerWorker(r.target.id, { strictOnly: r.capabilities.strictOnly }),
      gone: (r, event) => {
        dispatch.removeWorker(r.target.id)
        this.emit(event, { targetId: r.target.id })
      },
      lost: (job, why) => this.loseAttempt(job, why),
      undelivered: (job, targetId) => this.notDelivered(job, targetId),
    })
    this.registry.register(
      { id: this.initiator, kind: 'initiator', availability: 0, labels: {}, projects: [] },
      capabilitiesOf('initiator', this.leaseMs),
    )
  }

  /** Listens to every event; returns a function that stops listening. */
  on(listener: EngineListener): () => void {
    this.listeners.push(listener)
    return () => {
      const i = this.listeners.indexOf(listener)
      if (i >= 0) this.listeners.splice(i, 1)
    }
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
    const record = this.registry.register(target, capabilitiesOf(target.kind, this.leaseMs))
    this.emit('target:registered', { target })
    const cached = spec.cached ?? []
    for (const id of cached) this.dispatch.addCached(spec.id, id)
    if (cached.length > 0)
      this.emit('cache:changed', { targetId: spec.id, added: cached, removed: [] })
    this.registry.restarted(record, spec.running ?? [])
    return target
  }

  /** Renews a worker's lease. Throws TARGET_NOT_FOUND for a worker that is unknown or lost. */
  heartbeat(targetId: string, running?: readonly RunningAttempt[]): void {
    // An attempt the worker does not say it runs is lost once it had a lease's time to arrive.
    this.registry.heartbeat(this.workerRecord(targetId), running, this.leaseMs)
  }

  /** A target leaves: its running attempts fail with `worker-lost` and follow their policy. */
  removeTarget(targetId: string): void {
    this.registry.remove(this.workerRecord(targetId))
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
  targets(): { target: Target; live: boolean; running: number }[] {
    return this.registry.targets()
  }

  /** Records products a target gained or lost from its cache. */
  reportCache(targetId: string, added: readonly string[], removed: readonly string[] = []): void {
    this.registry.live(targetId)
    if (added.length === 0 && removed.length === 0) return
    for (const id of added) this.dispatch.addCached(targetId, id)
    for (const id of removed) this.dispatch.removeCached(targetId, id)
    this.emit('cache:changed', { targetId, added: [...added], removed: [...removed] })
  }

  // ---- submission ----

  /** Checks and stores a packet; a name used before gets a new version under a new id. */
  createPacket(input: unknown): PacketRecord {
    return this.storePacket(compilePacket(input))
  }

  private storePacket(packet: Packet): PacketRecord {
    const record = this.packets.add(packet, this.ids.next(this.clock.now()), this.clock.now())
    this.emit('packet:created', { packetId: record.id, name: record.name, packet })
    return record
  }

  /** A packet by id, or the latest of that name. */
  packet(idOrName: string): PacketRecord | undefined {
    return this.packets.get(idOrName)
  }

  /** Orders a stored packet (by id or name). */
  orderPacket(packetRef: string, options: unknown, submitter: string): OrderFulfilment {
    const record = this.packet(packetRef)
    if (record === undefined) {
      throw new LockstepError('PACKET_NOT_FOUND', `no packet has the id or name '${packetRef}'`)
    }
    const packet = record.packet
    const resolved = compileOrderOptions(options, new Set(packet.jobs.map((j) => j.name)))
    const now = this.clock.now()
    return this.start(packetSubmission(record.id, packet, resolved, submitter, this.ids, now))
  }

  /** Stores a packet and orders it once. */
  submitPacket(input: unknown, options: unknown, submitter: string): OrderFulfilment {
    // Both checked before anything is stored: a bad order leaves no packet behind.
    const packet = compilePacket(input)
    compileOrderOptions(options, new Set(packet.jobs.map((j) => j.name)))
    const record = this.storePacket(packet)
    return this.orderPacket(record.id, options, submitter)
  }

  /**
   * Binds an artifact over the live workers that hold its project's data (in id order) and the
   * initiator, and orders it. Throws NO_WORKER_FOR_PROJECT when no live worker holds the data.
   */
  submitArtifact(input: unknown, options: unknown, submitter: string): OrderFulfilment {
    const { artifact, resolved } = compileArtifactOrder(input, options)
    const workers = this.workersFor(artifact.project)
    if (workers.length === 0) {
      throw new LockstepError(
        'NO_WORKER_FOR_PROJECT',
        `no live worker holds the data of project '${artifact.project}'`,
      )
    }
    const context = { initiator: this.initiator, workers }
    const now = this.clock.now()
    const submission = artifactSubmission(artifact, context, resolved, submitter, this.ids, now)
    return this.start(submission, artifact)
  }

  /** The live workers holding a project's data, in id order: an artifact's context. */
  workersFor(project: string): string[] {
    return this.registry.holding(project)
  }

  // ---- dispatch ----

  /** Hands up to `max` jobs to a pulling target and starts their attempts. */
  pick(targetId: string, max: number): Assignment[] {
    const record = this.registry.live(targetId)
    const out: Assignment[] = []
    while (out.length < max && !this.stopped) {
      const pending = this.dispatch.tryPickJob(targetId)
      if (pending === null) break
      out.push(this.startAttempt(this.claims.leader(pending.job.id)!, record))
    }
    return out
  }

  /** One scheduling cycle for push targets: free slots per target in, started attempts out. */
  cycle(availability: ReadonlyMap<string, number>): Assignment[] {
    const live = new Map<string, number>()
    for (const [id, n] of availability) if (this.registry.isLive(id)) live.set(id, n)
    return this.dispatch
      .cycle(live)
      .map((a) => this.startAttempt(this.claims.leader(a.jobId)!, this.registry.get(a.target)!))
  }

  /**
   * Records the result of an attempt. Throws STALE_ATTEMPT when the attempt is not the job's
   * current one on this target (it was retried, lost, cancelled or timed out), so a job is
   * never recorded as succeeded twice.
   */
  complete(targetId: string, jobId: Id, attempt: number, result: JobResult): void {
    const job = this.jobRecords.get(jobId)
    if (job === undefined) throw new LockstepError('JOB_NOT_FOUND', `no job has the id ${jobId}`)
    const current = job.current
    if (
      job.job.state !== 'running' ||
      current === undefined ||
      current.attempt !== attempt ||
      current.target !== targetId
    ) {
      throw new LockstepError(
        'STALE_ATTEMPT',
        `attempt ${attempt} of job ${jobId} on ${targetId} is not current` +
          (current === undefined
            ? ''
            : ` (the job is ${job.job.state}; its latest attempt is ${current.attempt} on ${current.target})`),
      )
    }
    this.dispatch.onJobComplete(targetId, job.productId, result)
    if (result.ok) this.succeed(job, targetId, result)
    else this.attemptFailed(job, result)
  }

  // ---- cancellation ----

  /**
   * Cancels an order in any state: waiting jobs are cancelled, running attempts are told to
   * stop. Cancelling a cancelled order does nothing; a succeeded or failed one is ALREADY_FINAL.
   */
  cancelOrder(orderId: Id, reason = 'cancelled by request'): OrderFulfilment {
    const order = this.orderRecord(orderId)
    if (order.order.state === 'running') this.endOrder(order, 'cancelled', reason)
    else if (order.order.state !== 'cancelled') {
      throw new LockstepError('ALREADY_FINAL', `order ${orderId} has already ${order.order.state}`)
    }
    return this.fulfilment(orderId)
  }

  /**
   * Cancels one job in any state but a final one: a running attempt is told to stop, and the
   * jobs that wait on it are skipped; the rest of the order runs on.
   */
  cancelJob(jobId: Id, reason = 'cancelled by request'): Job {
    const job = this.jobRecord(jobId)
    if (finalJobStates.has(job.job.state)) {
      throw new LockstepError('ALREADY_FINAL', `job ${jobId} has already ${job.job.state}`)
    }
    this.cancel(job, reason)
    this.skipDependents(job)
    this.settle(job.order)
    return job.job
  }

  // ---- recovery ----

  /**
   * Rebuilds a fresh engine from stored state, emitting nothing for what is already stored:
   * ready jobs are queued again, running attempts stay with their targets (whose leases start
   * over, a grace period for live workers to heartbeat), backoffs and timeouts resume where they
   * were. Attempts on targets that were not live are lost at once, with events.
   */
  restore(state: EngineState): void {
    if (this.orders.size > 0 || this.packets.size > 0) {
      throw new Error('restore() needs a fresh engine')
    }
    const now = this.clock.now()
    this.packets.restore(state.packets)
    this.registry.restore(
      state.targets.filter((t) => t.target.id !== this.initiator),
      (target) => capabilitiesOf(target.kind, this.leaseMs),
    )
    for (const p of state.products) {
      if (this.registry.isLive(p.targetId)) this.dispatch.addCached(p.targetId, p.productId)
    }
    const attempts = new Map<Id, TargetFulfilment[]>()
    for (const a of state.attempts) {
      let list = attempts.get(a.jobId)
      if (list === undefined) attempts.set(a.jobId, (list = []))
      list.push(a)
    }
    const restored: OrderRecord[] = []
    for (const o of state.orders) {
      const order = new OrderRecord(o.stored.order)
      order.startedAt = o.stored.startedAt
      order.iterations = o.stored.iterations
      this.link(order, o.jobs, o.locks)
      for (const job of order.jobs) {
        order.counts[job.job.state]++
        job.held = job.inputs.filter((p) => p.job.state !== 'succeeded').length
        const list = attempts.get(job.job.id)
        if (list !== undefined) job.attempts.push(...list.sort((a, b) => a.attempt - b.attempt))
      }
      restored.push(order)
    }
    const lost: JobRecord[] = []
    const readyAgain: JobRecord[] = []
    for (const order of restored) {
      for (const job of order.jobs) {
        const state = job.job.state
        if (state === 'ready') readyAgain.push(job)
        else if (state === 'running') {
          const current = job.current
          const target = current === undefined ? undefined : this.registry.get(current.target)
          if (current === undefined || target?.live !== true) {
            lost.push(job)
            continue
          }
          this.dispatch.scheduleRunning(this.dispatchOptions(job), target.target.id)
          this.claims.lead(job)
          job.runningOn = target
          target.running.set(job.job.id, job)
          if (job.job.timeoutMs !== undefined) {
            const left = current.transitions[0]!.at + job.job.timeoutMs - now
            const attempt = current.attempt
            job.timeoutTimer = this.clock.setTimeout(
              () => this.timedOut(job, attempt),
              Math.max(0, left),
            )
          }
        } else if (state === 'waiting' && job.job.retryAt !== undefined) {
          this.armRetry(job)
        } else if (state === 'waiting' && job.held === 0) {
          this.ready(job)
        }
      }
    }
    // Ready jobs go back to dispatch after the running ones have claimed their products: a job
    // whose cache key another one is making waits for it again.
    for (const job of readyAgain) this.claims.claim(job)
    for (const job of lost) {
      if (job.current === undefined) {
        // Stored as running with no attempt: it never started; queue it again.
        this.setState(job, 'waiting')
        this.ready(job)
      } else {
        job.runningOn = undefined
        this.loseAttempt(job, `${job.current.target} was not live when the scheduler restarted`)
      }
    }
    for (const order of restored) this.settle(order)
  }

  // ---- queries ----

  order(orderId: Id): Order | undefined {
    return this.orders.get(orderId)?.order
  }

  /** Every order, oldest first. */
  listOrders(): Order[] {
    return [...this.orders.values()].map((o) => o.order)
  }

  fulfilment(orderId: Id): OrderFulfilment {
    const o = this.orderRecord(orderId)
    const total = o.jobs.length
    const ended = total - o.counts.waiting - o.counts.ready - o.counts.running
    const out: OrderFulfilment = {
      orderId,
      state: o.order.state,
      priority: o.order.priority,
      owner: o.order.owner,
      total,
      counts: { ...o.counts },
      progress: total === 0 ? 1 : ended / total,
      createdAt: o.order.createdAt,
    }
    if (o.iterations > 1) {
      out.iterations = o.iterations
      let iteration = o.iterations - 1
      for (const j of o.jobs) {
        if (!finalJobStates.has(j.job.state)) iteration = Math.min(iteration, j.job.iteration ?? 0)
      }
      out.iteration = iteration
    }
    if (o.startedAt !== undefined) out.startedAt = o.startedAt
    if (o.endedAt !== undefined) out.endedAt = o.endedAt
    if (o.reason !== undefined) out.reason = o.reason
    return out
  }

  job(jobId: Id): Job | undefined {
    return this.jobRecords.get(jobId)?.job
  }

  /** An order's jobs, in their order in the packet or artifact. */
  jobs(orderId: Id): Job[] {
    return this.orderRecord(orderId).jobs.map((j) => j.job)
  }

  /** Every attempt of a job, first first. */
  attempts(jobId: Id): TargetFulfilment[] {
    return this.jobRecord(jobId).attempts
  }

  /** The products a job reads and where they are. */
  inputs(jobId: Id): JobInput[] {
    return this.jobRecord(jobId).inputs.map((p) => ({
      jobId: p.job.id,
      name: p.job.name,
      productId: p.productId,
      holders: this.dispatch.holders(p.productId),
    }))
  }

  /** Every live target holding a product. */
  holders(productId: string): string[] {
    return this.dispatch.holders(productId)
  }

  /** Counts for metrics: jobs by state over the orders in memory, and the dispatch queues. */
  stats(): { jobs: JobCounts; queued: number; targets: number; running: number } {
    const jobs = emptyCounts()
    for (const o of this.orders.values()) {
      for (const state of Object.keys(jobs) as JobState[]) jobs[state] += o.counts[state]
    }
    const d = this.dispatch.stats()
    return { jobs, queued: d.waiting, targets: d.targets, running: d.running }
  }

  /** Any live target holding a job's product. */
  locateArtifact(jobId: Id): string | undefined {
    const job = this.jobRecords.get(jobId)
    return this.dispatch.locateArtifact(job === undefined ? jobId : job.productId)
  }

  /** Why a job has not started yet; undefined once it runs or has ended. */
  explain(jobId: Id): JobWait | undefined {
    const job = this.jobRecord(jobId)
    if (job.job.state === 'waiting') {
      if (job.job.retryAt !== undefined) return { kind: 'backoff', until: job.job.retryAt }
      return {
        kind: 'locks',
        waitingFor: job.inputs.filter((p) => p.job.state !== 'succeeded').map((p) => p.job.id),
      }
    }
    if (job.job.state === 'ready') {
      const leader = this.claims.leader(job.productId)
      if (leader !== undefined && leader !== job)
        return { kind: 'same-product', job: leader.job.id }
      return this.dispatch.explain(job.productId)
    }
    return undefined
  }

  /**
   * Drops an ended order and its jobs from memory, once the store holds them: the engine keeps
   * what is in flight, the store keeps history. Refuses an order still running.
   */
  forgetOrder(orderId: Id): void {
    const order = this.orderRecord(orderId)
    if (order.order.state === 'running') {
      throw new LockstepError('VALIDATION_FAILED', `order ${orderId} is still running`)
    }
    for (const job of order.jobs) this.jobRecords.delete(job.job.id)
    this.orders.delete(orderId)
  }

  /** Ends every timer; the engine takes no more work. */
  stop(): void {
    this.stopped = true
    this.dispatch.stop()
    this.registry.stop()
    for (const j of this.jobRecords.values()) {
      j.retryTimer?.cancel()
      j.timeoutTimer?.cancel()
    }
  }

  // ---- internals: orders ----

  /** Makes an order's job records, joins them by its locks, and indexes them. */
  private link(order: OrderRecord, jobs: Job[], locks: readonly Lock[]): void {
    const byId = new Map<Id, JobRecord>()
    for (const job of jobs) {
      const record = new JobRecord(job, order, job.uses)
      byId.set(job.id, record)
      order.jobs.push(record)
    }
    for (const lock of locks) {
      const from = byId.get(lock.jobId)!
      const to = byId.get(lock.nextId)!
      from.next.push(to)
      to.inputs.push(from)
      to.held++
    }
    this.orders.set(order.order.id, order)
    for (const record of order.jobs) this.jobRecords.set(record.job.id, record)
  }

  /** Links a new order's jobs by its locks, announces it, and makes its first jobs ready. */
  private start(submission: Submission, artifact?: Artifact): OrderFulfilment {
    const { jobs, locks } = submission
    const order = new OrderRecord(submission.order)
    order.iterations = submission.iterations
    this.link(order, jobs, locks)
    order.counts.waiting = jobs.length
    this.emit('order:submitted', {
      order: order.order,
      jobs,
      locks,
      iterations: order.iterations,
      ...(artifact === undefined ? {} : { artifact }),
    })
    // A job may already have succeeded from the cache, releasing the jobs after it.
    for (const record of order.jobs) {
      if (record.held === 0 && record.job.state === 'waiting') this.ready(record)
    }
    return this.fulfilment(order.order.id)
  }

  /** Ends an order: every job not yet final is cancelled and running attempts are stopped. */
  private endOrder(order: OrderRecord, state: OrderState, reason: string | undefined): void {
    if (!ORDER_NOT_FINAL.has(order.order.state)) return
    order.order.state = state
    for (const job of order.jobs) {
      if (!finalJobStates.has(job.job.state)) this.cancel(job, `order ${state}`)
    }
    order.endedAt = this.clock.now()
    order.reason = reason
    const orderId = order.order.id
    if (state === 'succeeded') this.emit('order:succeeded', { orderId })
    else if (state === 'failed') this.emit('order:failed', { orderId, reason: reason ?? 'failed' })
    else this.emit('order:cancelled', { orderId, reason: reason ?? 'cancelled' })
  }

  /** Ends the order once every job has: failed if any failed, cancelled if any was cancelled. */
  private settle(order: OrderRecord): void {
    if (order.order.state !== 'running') return
    const c = order.counts
    if (c.waiting + c.ready + c.running > 0) return
    if (c.failed > 0)
      this.endOrder(order, 'failed', `${c.failed} of ${order.jobs.length} jobs failed`)
    else if (c.cancelled > 0) {
      this.endOrder(
        order,
        'cancelled',
        `${c.cancelled} of ${order.jobs.length} jobs were cancelled`,
      )
    } else this.endOrder(order, 'succeeded', undefined)
  }

  // ---- internals: jobs ----

  private setState(job: JobRecord, state: JobState): void {
    const counts = job.order.counts
    counts[job.job.state]--
    counts[state]++
    job.job.state = state
  }

  /** Every lock into the job is released (or its backoff is over): it goes to dispatch. */
  private ready(job: JobRecord): void {
    job.job.retryAt = undefined
    job.retryTimer = undefined
    this.setState(job, 'ready')
    const holder = this.claims.cached(job)
    if (holder !== undefined) {
      this.fromCache(job, holder)
      return
    }
    this.claims.claim(job)
    this.emit('job:ready', { orderId: job.order.order.id, jobId: job.job.id })
  }

  /** Readies a job backing off when its retry is due. */
  private armRetry(job: JobRecord): void {
    job.retryTimer = this.clock.setTimeout(
      () => {
        if (job.job.state === 'waiting' && job.job.retryAt !== undefined) this.ready(job)
      },
      Math.max(0, job.job.retryAt! - this.clock.now()),
    )
  }

  /** A job whose product a live target already holds succeeds without running. */
  private fromCache(job: JobRecord, holder: string): void {
    this.setState(job, 'succeeded')
    this.emit('job:succeeded', {
      orderId: job.order.order.id,
      jobId: job.job.id,
      attempt: job.job.attempt,
      target: holder,
      productId: job.productId,
      cached: true,
    })
    this.released(job)
  }

  /**
   * The job in the dispatch core for a product has ended: with the product, the jobs waiting
   * for it take it; without, the first of them runs in its place.
   */
  private stepDown(job: JobRecord, holder: string | undefined): void {
    const takers = this.claims.stepDown(job, holder)
    for (const f of takers) this.fromCache(f, holder!)
  }

  private dispatchOptions(job: JobRecord): ScheduleJobOptions {
    const policy = job.job.policy
    return {
      id: job.productId,
      deps: job.inputs.length > 0 ? job.inputs.map((p) => p.productId) : undefined,
      priority: job.order.order.priority,
      target: policy.kind === 'strict' ? policy.target : undefined,
      uses: job.uses.length > 0 ? job.uses : undefined,
      avoid: job.avoid,
    }
  }

  private startAttempt(job: JobRecord, target: TargetRecord<JobRecord>): Assignment {
    const now = this.clock.now()
    job.job.attempt++
    const attempt = job.job.attempt
    const fulfilment: TargetFulfilment = {
      jobId: job.job.id,
      orderId: job.order.order.id,
      attempt,
      target: target.target.id,
      state: 'running',
      transitions: [{ state: 'running', at: now }],
    }
    job.attempts.push(fulfilment)
    job.runningOn = target
    target.running.set(job.job.id, job)
    this.setState(job, 'running')
    job.order.startedAt ??= now
    if (job.job.timeoutMs !== undefined) {
      job.timeoutTimer = this.clock.setTimeout(() => this.timedOut(job, attempt), job.job.timeoutMs)
    }
    this.emit('attempt:started', {
      orderId: job.order.order.id,
      jobId: job.job.id,
      attempt,
      target: target.target.id,
    })
    const out: Assignment = {
      orderId: job.order.order.id,
      jobId: job.job.id,
      productId: job.productId,
      name: job.job.name,
      attempt,
      target: target.target.id,
      op: job.job.op,
      resources: job.resources,
      timeoutMs: job.job.timeoutMs,
      inputs: this.inputs(job.job.id),
    }
    if (job.job.step !== undefined) out.step = job.job.step
    if (job.job.iteration !== undefined) out.iteration = job.job.iteration
    return out
  }

  /** Ends the current attempt's record; the caller decides what follows. */
  private endAttempt(job: JobRecord, state: AttemptState, result: JobResult | undefined): void {
    const current = job.current!
    current.state = state
    current.transitions.push({ state, at: this.clock.now() })
    if (result?.reason !== undefined) current.reason = result.reason
    else if (!(result?.ok ?? true)) current.reason = failureReason(result!)
    if (result?.exitCode !== undefined) current.exitCode = result.exitCode
    if (result?.message !== undefined) current.message = result.message
    if (state === 'succeeded') current.product = current.target
    job.timeoutTimer?.cancel()
    job.timeoutTimer = undefined
    job.runningOn?.running.delete(job.job.id)
    job.runningOn = undefined
    this.emit('attempt:ended', {
      orderId: job.order.order.id,
      jobId: job.job.id,
      fulfilment: current,
    })
  }

  private succeed(job: JobRecord, targetId: string, result: JobResult): void {
    this.endAttempt(job, 'succeeded', result)
    this.setState(job, 'succeeded')
    const orderId = job.order.order.id
    this.emit('job:succeeded', {
      orderId,
      jobId: job.job.id,
      attempt: job.job.attempt,
      target: targetId,
      productId: job.productId,
    })
    this.stepDown(job, targetId)
    this.released(job)
  }

  /** A job succeeded: its outgoing locks are released, and its order may be done. */
  private released(job: JobRecord): void {
    // A lock is released once, by the one success of the job that holds it.
    for (const next of job.next) {
      if (--next.held === 0 && next.job.state === 'waiting') this.ready(next)
    }
    this.settle(job.order)
  }

  /** A running attempt failed: retry by the job's policy, or give the job up. */
  private attemptFailed(job: JobRecord, result: JobResult): void {
    const reason = failureReason(result)
    const failedOn = job.current!.target
    this.endAttempt(job, 'failed', result)
    const orderId = job.order.order.id
    const decision = decideAfterFailure(
      {
        policy: job.job.failure,
        counted: job.job.attempt - job.undelivered,
        orderRunning: job.order.order.state === 'running',
        target: failedOn,
        avoid: job.avoid,
        reason: result.reason,
      },
      this.random,
    )
    if (decision.kind === 'retry') {
      job.avoid = decision.avoid
      this.setState(job, 'waiting')
      job.job.retryAt = this.clock.now() + decision.delay
      this.emit('job:retrying', {
        orderId,
        jobId: job.job.id,
        attempt: job.job.attempt,
        retryAt: job.job.retryAt,
        reason,
      })
      if (decision.delay === 0) this.ready(job)
      else this.armRetry(job)
      return
    }
    this.setState(job, 'failed')
    this.stepDown(job, undefined)
    job.job.reason = describeFailure(result)
    this.emit('job:failed', { orderId, jobId: job.job.id, attempt: job.job.attempt, reason })
    if (decision.onExhausted === 'fail-order') {
      this.endOrder(job.order, 'failed', `job ${job.job.name} failed: ${job.job.reason}`)
    } else {
      this.skipDependents(job)
      this.settle(job.order)
    }
  }

  /** Every job that waits, directly or not, on one that will never succeed is skipped. */
  private skipDependents(from: JobRecord): void {
    const stack = [...from.next]
    const why = `job ${from.job.name} ${from.job.state}`
    while (stack.length > 0) {
      const job = stack.pop()!
      if (finalJobStates.has(job.job.state)) continue
      // A dependent cannot have started: one of its locks is still held.
      this.setState(job, 'skipped')
      job.job.reason = why
      this.emit('job:skipped', { orderId: job.order.order.id, jobId: job.job.id, reason: why })
      stack.push(...job.next)
    }
  }

  /** Cancels a job that is not final, telling its target to stop a running attempt. */
  private cancel(job: JobRecord, reason: string): void {
    const state = job.job.state
    job.retryTimer?.cancel()
    job.retryTimer = undefined
    job.job.retryAt = undefined
    if (state === 'running') {
      const current = job.current!
      this.emit('attempt:stop', {
        orderId: job.order.order.id,
        jobId: job.job.id,
        attempt: current.attempt,
        target: current.target,
        reason,
      })
      this.dispatch.cancelJob(job.productId)
      this.endAttempt(job, 'cancelled', { ok: false, reason: 'cancelled', message: reason })
    } else if (state === 'ready' && this.claims.leader(job.productId) === job) {
      this.dispatch.cancelJob(job.productId)
    }
    this.setState(job, 'cancelled')
    this.stepDown(job, undefined)
    job.job.reason = reason
    this.emit('job:cancelled', { orderId: job.order.order.id, jobId: job.job.id, reason })
  }

  private timedOut(job: JobRecord, attempt: number): void {
    if (job.job.state !== 'running' || job.job.attempt !== attempt) return
    const current = job.current!
    const message = `attempt ${attempt} ran longer than ${job.job.timeoutMs} ms`
    this.emit('attempt:stop', {
      orderId: job.order.order.id,
      jobId: job.job.id,
      attempt,
      target: current.target,
      reason: 'timeout',
    })
    this.failRunning(job, { ok: false, reason: 'timeout', message })
  }

  /**
   * A live worker does not run an attempt handed to it a lease ago: the reply that carried it
   * never arrived. The job runs again at once, and the attempt does not count against it.
   */
  private notDelivered(job: JobRecord, targetId: string): void {
    if (job.job.state !== 'running') return
    job.undelivered++
    this.failRunning(job, {
      ok: false,
      reason: NOT_DELIVERED,
      message: `${targetId} never received it`,
    })
  }

  private loseAttempt(job: JobRecord, message: string): void {
    // Losing one attempt can end its order and so cancel the others of a lost target before
    // their turn comes: those are no longer running, and nothing of them is left to lose.
    if (job.job.state !== 'running') return
    this.failRunning(job, { ok: false, reason: 'worker-lost', message })
  }

  /** A running attempt ends without a result from its target: it follows the job's policy. */
  private failRunning(job: JobRecord, result: JobResult): void {
    this.dispatch.cancelJob(job.productId, result)
    this.attemptFailed(job, result)
  }

  // ---- internals: targets ----

  /** A live target that speaks for itself: never the initiator, which lives in the scheduler. */
  private workerRecord(targetId: string): TargetRecord<JobRecord> {
    if (targetId === this.initiator) {
      throw new LockstepError('TARGET_NOT_FOUND', `'${targetId}' is the initiator, not a worker`)
    }
    return this.registry.live(targetId)
  }

  private orderRecord(orderId: Id): OrderRecord {
    const o = this.orders.get(orderId)
    if (o === undefined)
      throw new LockstepError('ORDER_NOT_FOUND', `no order has the id ${orderId}`)
    return o
  }

  private jobRecord(jobId: Id): JobRecord {
    const j = this.jobRecords.get(jobId)
    if (j === undefined) throw new LockstepError('JOB_NOT_FOUND', `no job has the id ${jobId}`)
    return j
  }

  private emit<K extends EngineEventType>(type: K, body: EngineEventMap[K]): void {
    if (this.listeners.length === 0) return
    const event = { type, at: this.clock.now(), ...body } as EngineEvent
    for (const listener of this.listeners) listener(event)
  }
}

/** A machine-readable reason for a failed result: `exit-code`, `timeout`, `worker-lost`, … */
function failureReason(result: JobResult): string {
  if (result.reason !== undefined) return result.reason
  if (result.exitCode !== undefined) return 'exit-code'
  return 'failed'
}

/** The reason with its details, for people: `exit-code 3: out of memory`. */
function describeFailure(result: JobResult): string {
  let out = failureReason(result)
  if (result.exitCode !== undefined) out += ` ${result.exitCode}`
  if (result.message !== undefined) out += `: ${result.message}`
  return out
}
