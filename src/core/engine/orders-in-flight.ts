/**
 * The orders an engine holds in memory, from submission (or restore) until the store holds their
 * end and the engine forgets them, with their jobs by id; and the ways into them from outside:
 * a result, a cancellation, a question why a job waits.
 *
 * Invariants: a job succeeds at most once, because a result is accepted only for the job's
 * current attempt on the target running it; an order is indexed before it is announced, so a
 * listener may read it.
 */
import type { Clock } from '../clock.ts'
import { LockstepError } from '../errors.ts'
import type { Id } from '../ids.ts'
import type { Artifact, Job, JobResult, Lock, Order } from '../model.ts'
import { finalJobStates } from '../model.ts'
import type { Scheduler, WaitReason } from '../dispatch/scheduler.ts'
import type { Assignment } from '../protocol.ts'
import type { EngineEvents } from './events.ts'
import { emptyCounts } from './fulfilment.ts'
import type { JobCounts, TargetFulfilment } from './fulfilment.ts'
import { JobLifecycle } from './job-lifecycle.ts'
import { dispatchOptions, linkJobs, OrderRecord } from './order-record.ts'
import type { JobRecord } from './order-record.ts'
import { ProductClaims } from './product-claims.ts'
import type { ProductLedger } from './product-ledger.ts'
import type { Submission } from './submission.ts'
import type { TargetRecord } from './target-registry.ts'

/** Why a job has not started: locks, a backoff, or a dispatch reason. */
export type JobWait =
  | { kind: 'locks'; waitingFor: Id[] }
  | { kind: 'backoff'; until: number }
  /** Another job with the same cache key makes the product; this one takes it when it is made. */
  | { kind: 'same-product'; job: Id }
  | WaitReason

/** An order as the store keeps it while it is in flight. */
export interface StoredOrder {
  stored: { order: Order; startedAt?: number; iterations: number }
  jobs: Job[]
  locks: readonly Lock[]
}

/**
 * The orders in memory and their jobs. It moves them through a {@link JobLifecycle}, and keeps
 * the makers of products in {@link ProductClaims}.
 */
export class OrdersInFlight {
  private readonly orders = new Map<Id, OrderRecord>()
  /** Orders not yet ended, by owner: what {@link runningOf} answers in O(1). */
  private readonly inFlight = new Map<string, number>()
  private readonly jobs = new Map<Id, JobRecord>()
  private readonly clock: Clock
  private readonly dispatch: Scheduler
  private readonly events: EngineEvents
  private readonly claims: ProductClaims<JobRecord>
  private readonly lifecycle: JobLifecycle

  constructor(parts: {
    clock: Clock
    /** Random numbers in [0, 1) for backoff jitter. */
    random: () => number
    dispatch: Scheduler
    events: EngineEvents
    ledger: ProductLedger
  }) {
    const { clock, dispatch, events, ledger } = parts
    this.clock = clock
    this.dispatch = dispatch
    this.events = events
    const claims = (this.claims = new ProductClaims<JobRecord>(
      (job) => dispatch.scheduleJob(dispatchOptions(job)),
      // A cache key is satisfied only by a product whose hash is known: a copy of any other
      // could not be checked by the jobs that read it.
      (productId) =>
        ledger.hash(productId) === undefined ? undefined : dispatch.locateArtifact(productId),
    ))
    this.lifecycle = new JobLifecycle({
      clock,
      random: parts.random,
      dispatch,
      claims,
      events,
      ledger,
      ended: (order) => this.countInFlight(order.order.owner, -1),
    })
  }

  /** How many orders of an owner have not ended. */
  runningOf(owner: string): number {
    return this.inFlight.get(owner) ?? 0
  }

  /** How many orders are in memory. */
  get size(): number {
    return this.orders.size
  }

  /** Links a new order's jobs by its locks, announces it, and makes its first jobs ready. */
  start(submission: Submission, artifact?: Artifact): OrderRecord {
    const { jobs, locks } = submission
    const order = new OrderRecord(submission.order)
    order.iterations = submission.iterations
    this.link(order, jobs, locks)
    order.counts.waiting = jobs.length
    this.events.emit('order:submitted', {
      order: order.order,
      jobs,
      locks,
      iterations: order.iterations,
      ...(artifact === undefined ? {} : { artifact }),
    })
    // A job may already have succeeded from the cache, releasing the jobs after it.
    for (const record of order.jobs) {
      if (record.held === 0 && record.job.state === 'waiting') this.lifecycle.ready(record)
    }
    return order
  }

  order(orderId: Id): OrderRecord | undefined {
    return this.orders.get(orderId)
  }

  job(jobId: Id): JobRecord | undefined {
    return this.jobs.get(jobId)
  }

  /** An order in memory; ORDER_NOT_FOUND for any other. */
  orderRecord(orderId: Id): OrderRecord {
    const o = this.orders.get(orderId)
    if (o === undefined)
      throw new LockstepError('ORDER_NOT_FOUND', `no order has the id ${orderId}`)
    return o
  }

  /** A job in memory; JOB_NOT_FOUND for any other. */
  jobRecord(jobId: Id): JobRecord {
    const j = this.jobs.get(jobId)
    if (j === undefined) throw new LockstepError('JOB_NOT_FOUND', `no job has the id ${jobId}`)
    return j
  }

  /** Every order, oldest first. */
  list(): Order[] {
    return [...this.orders.values()].map((o) => o.order)
  }

  /** Jobs by state over every order in memory. */
  counts(): JobCounts {
    const jobs = emptyCounts()
    for (const o of this.orders.values()) {
      for (const state of Object.keys(jobs) as (keyof JobCounts)[]) jobs[state] += o.counts[state]
    }
    return jobs
  }

  /** Drops an ended order and its jobs; refuses an order still running. */
  forget(orderId: Id): void {
    const order = this.orderRecord(orderId)
    if (order.order.state === 'running') {
      throw new LockstepError('VALIDATION_FAILED', `order ${orderId} is still running`)
    }
    for (const job of order.jobs) this.jobs.delete(job.job.id)
    this.orders.delete(orderId)
  }

  /** Starts the next attempt of the job the dispatch core picked, by its product id. */
  startAttempt(productId: string, target: TargetRecord<JobRecord>): Assignment {
    return this.lifecycle.startAttempt(this.claims.leader(productId)!, target)
  }

  /** The target running an attempt is lost or restarted without it. */
  loseAttempt(job: JobRecord, why: string): void {
    this.lifecycle.loseAttempt(job, why)
  }

  /** A live target does not run an attempt handed to it a lease ago. */
  notDelivered(job: JobRecord, targetId: string): void {
    this.lifecycle.notDelivered(job, targetId)
  }

  /**
   * Records the result of an attempt. Throws STALE_ATTEMPT when the attempt is not the job's
   * current one on this target.
   */
  complete(targetId: string, jobId: Id, attempt: number, result: JobResult): void {
    const job = this.jobRecord(jobId)
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
    this.dispatch.onJobComplete(targetId, job.productId, result, job.makesProduct)
    if (result.ok) this.lifecycle.succeed(job, targetId, result)
    else this.lifecycle.attemptFailed(job, result)
  }

  /** Cancels a running order; a cancelled one is left as it is, a succeeded or failed one is ALREADY_FINAL. */
  cancelOrder(orderId: Id, reason: string): void {
    const order = this.orderRecord(orderId)
    if (order.order.state === 'running') this.lifecycle.endOrder(order, 'cancelled', reason)
    else if (order.order.state !== 'cancelled') {
      throw new LockstepError('ALREADY_FINAL', `order ${orderId} has already ${order.order.state}`)
    }
  }

  /** Cancels one job that is not final and skips the jobs that wait on it. */
  cancelJob(jobId: Id, reason: string): Job {
    const job = this.jobRecord(jobId)
    if (finalJobStates.has(job.job.state)) {
      throw new LockstepError('ALREADY_FINAL', `job ${jobId} has already ${job.job.state}`)
    }
    this.lifecycle.cancel(job, reason)
    this.lifecycle.skipDependents(job)
    this.lifecycle.settle(job.order)
    return job.job
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
   * Rebuilds the orders in flight from the store, emitting nothing for what is already stored:
   * ready jobs are queued again, running attempts stay with their live targets, backoffs and
   * timeouts resume where they were. Attempts on targets that are not live are lost at once,
   * with events.
   */
  restore(
    stored: readonly StoredOrder[],
    storedAttempts: readonly TargetFulfilment[],
    targetOf: (targetId: string) => TargetRecord<JobRecord> | undefined,
  ): void {
    const now = this.clock.now()
    const attempts = new Map<Id, TargetFulfilment[]>()
    for (const a of storedAttempts) {
      let list = attempts.get(a.jobId)
      if (list === undefined) attempts.set(a.jobId, (list = []))
      list.push(a)
    }
    const restored: OrderRecord[] = []
    for (const o of stored) {
      const order = new OrderRecord(o.stored.order)
      order.startedAt = o.stored.startedAt
      order.iterations = o.stored.iterations
      this.link(order, o.jobs, o.locks)
      for (const job of order.jobs) {
        order.counts[job.job.state]++
        let held = 0
        for (const p of job.inputs) if (p.job.state !== 'succeeded') held++
        job.held = held
        const list = attempts.get(job.job.id)
        if (list !== undefined) job.attempts = list.sort((a, b) => a.attempt - b.attempt)
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
          const target = current === undefined ? undefined : targetOf(current.target)
          if (current === undefined || target?.live !== true) {
            lost.push(job)
            continue
          }
          this.dispatch.scheduleRunning(dispatchOptions(job), target.target.id)
          this.claims.lead(job)
          job.runningOn = target
          target.running.set(job.job.id, job)
          if (job.job.timeoutMs !== undefined) {
            const left = current.transitions[0]!.at + job.job.timeoutMs - now
            this.lifecycle.armTimeout(job, current.attempt, Math.max(0, left))
          }
        } else if (state === 'waiting' && job.job.retryAt !== undefined) {
          this.lifecycle.armRetry(job)
        } else if (state === 'waiting' && job.held === 0) {
          this.lifecycle.ready(job)
        }
      }
    }
    // Ready jobs go back to dispatch after the running ones have claimed their products: a job
    // whose cache key another one is making waits for it again.
    for (const job of readyAgain) this.claims.claim(job)
    for (const job of lost) {
      if (job.current === undefined) {
        // Stored as running with no attempt: it never started; queue it again.
        this.lifecycle.setState(job, 'waiting')
        this.lifecycle.ready(job)
      } else {
        job.runningOn = undefined
        this.lifecycle.loseAttempt(
          job,
          `${job.current.target} was not live when the scheduler restarted`,
        )
      }
    }
    for (const order of restored) this.lifecycle.settle(order)
  }

  /** Ends every backoff and timeout timer. */
  stop(): void {
    for (const j of this.jobs.values()) {
      j.retryTimer?.cancel()
      j.timeoutTimer?.cancel()
    }
  }

  private countInFlight(owner: string, by: 1 | -1): void {
    const n = (this.inFlight.get(owner) ?? 0) + by
    if (n === 0) this.inFlight.delete(owner)
    else this.inFlight.set(owner, n)
  }

  /** Makes an order's job records, joins them by its locks, and indexes them. */
  private link(order: OrderRecord, jobs: Job[], locks: readonly Lock[]): void {
    linkJobs(order, jobs, locks)
    this.orders.set(order.order.id, order)
    if (order.order.state === 'running') this.countInFlight(order.order.owner, 1)
    for (const record of order.jobs) this.jobs.set(record.job.id, record)
  }
}
