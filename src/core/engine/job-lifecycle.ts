/**
 * The life of jobs and of the orders they make up: a job is ready when every lock into it is
 * released, runs in attempts, and ends succeeded, failed, skipped or cancelled; an order ends
 * when its jobs have, or when a failed job's policy ends it. Each transition emits its events.
 *
 * Invariants: every order reaches a final state; no attempt starts after its order ended; a
 * lock is released once, by the one success of the job that holds it.
 */
import type { Clock } from '../clock.ts'
import { decideAfterFailure, NOT_DELIVERED } from '../failure-policy.ts'
import type { JobResult, JobState, OrderState } from '../model.ts'
import { finalJobStates } from '../model.ts'
import type { Assignment } from '../protocol.ts'
import type { Scheduler } from '../dispatch/scheduler.ts'
import type { EngineEvents } from './events.ts'
import { describeFailure, endFulfilment, failureReason } from './fulfilment.ts'
import type { AttemptState, TargetFulfilment } from './fulfilment.ts'
import { inputsOf } from './order-record.ts'
import type { JobRecord, OrderRecord } from './order-record.ts'
import type { ProductClaims } from './product-claims.ts'
import type { ProductLedger } from './product-ledger.ts'
import type { TargetRecord } from './target-registry.ts'

const ORDER_NOT_FINAL: ReadonlySet<OrderState> = new Set(['running'])

/** Moves jobs and orders from state to state. */
export class JobLifecycle {
  private readonly clock: Clock
  private readonly random: () => number
  private readonly dispatch: Scheduler
  private readonly claims: ProductClaims<JobRecord>
  private readonly events: EngineEvents
  private readonly ledger: ProductLedger
  private readonly ended: (order: OrderRecord) => void
  private readonly holders = (productId: string): string[] => this.dispatch.holders(productId)
  private readonly hashOf = (productId: string): string | undefined => this.ledger.hash(productId)

  constructor(parts: {
    clock: Clock
    /** Random numbers in [0, 1) for backoff jitter. */
    random: () => number
    dispatch: Scheduler
    claims: ProductClaims<JobRecord>
    events: EngineEvents
    ledger: ProductLedger
    /** Called once when an order ends. */
    ended: (order: OrderRecord) => void
  }) {
    this.clock = parts.clock
    this.random = parts.random
    this.dispatch = parts.dispatch
    this.claims = parts.claims
    this.events = parts.events
    this.ledger = parts.ledger
    this.ended = parts.ended
  }

  // ---- orders ----

  /** Ends an order: every job not yet final is cancelled and running attempts are stopped. */
  endOrder(order: OrderRecord, state: OrderState, reason: string | undefined): void {
    if (!ORDER_NOT_FINAL.has(order.order.state)) return
    order.order.state = state
    this.ended(order)
    for (const job of order.jobs) {
      if (!finalJobStates.has(job.job.state)) this.cancel(job, `order ${state}`)
    }
    order.endedAt = this.clock.now()
    order.reason = reason
    const orderId = order.order.id
    if (state === 'succeeded') this.events.emit('order:succeeded', { orderId })
    else if (state === 'failed') {
      this.events.emit('order:failed', { orderId, reason: reason ?? 'failed' })
    } else this.events.emit('order:cancelled', { orderId, reason: reason ?? 'cancelled' })
  }

  /** Ends the order once every job has: failed if any failed, cancelled if any was cancelled. */
  settle(order: OrderRecord): void {
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

  // ---- jobs ----

  setState(job: JobRecord, state: JobState): void {
    const counts = job.order.counts
    counts[job.job.state]--
    counts[state]++
    job.job.state = state
  }

  /** Every lock into the job is released (or its backoff is over): it goes to dispatch. */
  ready(job: JobRecord): void {
    job.job.retryAt = undefined
    job.retryTimer = undefined
    this.setState(job, 'ready')
    const holder = this.claims.cached(job)
    if (holder !== undefined) {
      this.fromCache(job, holder)
      return
    }
    this.claims.claim(job)
    this.events.emit('job:ready', { orderId: job.order.order.id, jobId: job.job.id })
  }

  /** Readies a job backing off when its retry is due. */
  armRetry(job: JobRecord): void {
    job.retryTimer = this.clock.setTimeout(
      () => {
        if (job.job.state === 'waiting' && job.job.retryAt !== undefined) this.ready(job)
      },
      Math.max(0, job.job.retryAt! - this.clock.now()),
    )
  }

  /** Fails the attempt if it still runs after `ms`. */
  armTimeout(job: JobRecord, attempt: number, ms: number): void {
    job.timeoutTimer = this.clock.setTimeout(() => this.timedOut(job, attempt), ms)
  }

  /** Starts the next attempt of a job on a target: what the target is handed. */
  startAttempt(job: JobRecord, target: TargetRecord<JobRecord>): Assignment {
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
    job.addAttempt(fulfilment)
    job.runningOn = target
    target.running.set(job.job.id, job)
    this.setState(job, 'running')
    job.order.startedAt ??= now
    if (job.job.timeoutMs !== undefined) this.armTimeout(job, attempt, job.job.timeoutMs)
    this.events.emit('attempt:started', {
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
      inputs: inputsOf(job, this.holders, this.hashOf),
    }
    // The target may announce the inputs it fetches (and checks) for this attempt.
    const targetId = target.target.id
    this.ledger.grant(
      targetId,
      out.inputs.map((i) => i.productId),
      (id) => this.dispatch.holders(id).includes(targetId),
    )
    if (job.job.step !== undefined) out.step = job.job.step
    if (job.job.iteration !== undefined) out.iteration = job.job.iteration
    if (job.job.project !== undefined) out.project = job.job.project
    return out
  }

  /** The current attempt succeeded on its target. */
  succeed(job: JobRecord, targetId: string, result: JobResult): void {
    if (job.makesProduct) this.ledger.made(job.productId, result.productHash)
    this.endAttempt(job, 'succeeded', result)
    if (!job.makesProduct) delete job.current!.product
    this.setState(job, 'succeeded')
    const orderId = job.order.order.id
    this.events.emit('job:succeeded', {
      orderId,
      jobId: job.job.id,
      attempt: job.job.attempt,
      target: targetId,
      productId: job.productId,
      ...(job.makesProduct ? {} : { kept: false }),
    })
    // Jobs with its cache key take the product only if its hash is known; else one runs.
    const kept = job.makesProduct && result.productHash !== undefined
    this.stepDown(job, kept ? targetId : undefined)
    this.released(job)
  }

  /** A running attempt failed: retry by the job's policy, or give the job up. */
  attemptFailed(job: JobRecord, result: JobResult): void {
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
      this.events.emit('job:retrying', {
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
    this.events.emit('job:failed', { orderId, jobId: job.job.id, attempt: job.job.attempt, reason })
    if (decision.onExhausted === 'fail-order') {
      this.endOrder(job.order, 'failed', `job ${job.job.name} failed: ${job.job.reason}`)
    } else {
      this.skipDependents(job)
      this.settle(job.order)
    }
  }

  /** Every job that waits, directly or not, on one that will never succeed is skipped. */
  skipDependents(from: JobRecord): void {
    const stack = [...from.next]
    const why = `job ${from.job.name} ${from.job.state}`
    while (stack.length > 0) {
      const job = stack.pop()!
      if (finalJobStates.has(job.job.state)) continue
      // A dependent cannot have started: one of its locks is still held.
      this.setState(job, 'skipped')
      job.job.reason = why
      this.events.emit('job:skipped', {
        orderId: job.order.order.id,
        jobId: job.job.id,
        reason: why,
      })
      stack.push(...job.next)
    }
  }

  /** Cancels a job that is not final, telling its target to stop a running attempt. */
  cancel(job: JobRecord, reason: string): void {
    const state = job.job.state
    job.retryTimer?.cancel()
    job.retryTimer = undefined
    job.job.retryAt = undefined
    if (state === 'running') {
      this.tellToStop(job, reason)
      this.dispatch.cancelJob(job.productId)
      this.endAttempt(job, 'cancelled', { ok: false, reason: 'cancelled', message: reason })
    } else if (state === 'ready' && this.claims.leader(job.productId) === job) {
      this.dispatch.cancelJob(job.productId)
    }
    this.setState(job, 'cancelled')
    this.stepDown(job, undefined)
    job.job.reason = reason
    this.events.emit('job:cancelled', { orderId: job.order.order.id, jobId: job.job.id, reason })
  }

  /**
   * A live worker does not run an attempt handed to it a lease ago: the reply that carried it
   * never arrived. The job runs again at once, and the attempt does not count against it.
   */
  notDelivered(job: JobRecord, targetId: string): void {
    if (job.job.state !== 'running') return
    job.undelivered++
    this.failRunning(job, {
      ok: false,
      reason: NOT_DELIVERED,
      message: `${targetId} never received it`,
    })
  }

  /** The target running an attempt is lost or restarted without it. */
  loseAttempt(job: JobRecord, message: string): void {
    // Losing one attempt can end its order and so cancel the others of a lost target before
    // their turn comes: those are no longer running, and nothing of them is left to lose.
    if (job.job.state !== 'running') return
    this.failRunning(job, { ok: false, reason: 'worker-lost', message })
  }

  private timedOut(job: JobRecord, attempt: number): void {
    if (job.job.state !== 'running' || job.job.attempt !== attempt) return
    const message = `attempt ${attempt} ran longer than ${job.job.timeoutMs} ms`
    this.tellToStop(job, 'timeout')
    this.failRunning(job, { ok: false, reason: 'timeout', message })
  }

  /**
   * The target running a job's current attempt must stop it. A target that speaks for itself
   * hears it as data on its next call (the heartbeat takes its stops); every target hears it
   * from the event.
   */
  private tellToStop(job: JobRecord, reason: string): void {
    const current = job.current!
    const stop = { jobId: job.job.id, attempt: current.attempt, reason }
    const target = job.runningOn
    if (target !== undefined && target.capabilities.leaseMs > 0) target.stops.push(stop)
    this.events.emit('attempt:stop', {
      orderId: job.order.order.id,
      target: current.target,
      ...stop,
    })
  }

  /** A running attempt ends without a result from its target: it follows the job's policy. */
  private failRunning(job: JobRecord, result: JobResult): void {
    this.dispatch.cancelJob(job.productId, result)
    this.attemptFailed(job, result)
  }

  /** Ends the current attempt's record; the caller decides what follows. */
  private endAttempt(job: JobRecord, state: AttemptState, result: JobResult | undefined): void {
    const current = job.current!
    endFulfilment(current, state, result, this.clock.now())
    job.timeoutTimer?.cancel()
    job.timeoutTimer = undefined
    job.runningOn?.running.delete(job.job.id)
    job.runningOn = undefined
    this.events.emit('attempt:ended', {
      orderId: job.order.order.id,
      jobId: job.job.id,
      fulfilment: current,
    })
  }

  /** A job whose product a live target already holds succeeds without running. */
  private fromCache(job: JobRecord, holder: string): void {
    this.setState(job, 'succeeded')
    this.events.emit('job:succeeded', {
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

  /** A job succeeded: its outgoing locks are released, and its order may be done. */
  private released(job: JobRecord): void {
    // A lock is released once, by the one success of the job that holds it.
    for (const next of job.next) {
      if (--next.held === 0 && next.job.state === 'waiting') this.ready(next)
    }
    this.settle(job.order)
  }
}
