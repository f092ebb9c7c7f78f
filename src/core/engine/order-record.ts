/**
 * What the engine keeps of an order in flight and of each of its jobs: the jobs joined by their
 * locks, the count of jobs in each state, and every attempt.
 *
 * Invariants: `counts` always matches the states of the order's jobs; `held` is the number of
 * the job's incoming locks whose job has not succeeded.
 */
import type { Timer } from '../clock.ts'
import type { Id } from '../ids.ts'
import type { Job, Lock, Order, Resource } from '../model.ts'
import { finalJobStates, leavesProduct, operationKind, productOf } from '../model.ts'
import type { JobInput } from '../protocol.ts'
import type { ScheduleJobOptions } from '../dispatch/scheduler.ts'
import { emptyCounts, orderFulfilment } from './fulfilment.ts'
import type { JobCounts, OrderFulfilment, TargetFulfilment } from './fulfilment.ts'
import type { TargetRecord } from './target-registry.ts'

export class OrderRecord {
  readonly order: Order
  readonly jobs: JobRecord[] = []
  readonly counts: JobCounts = emptyCounts()
  startedAt: number | undefined = undefined
  endedAt: number | undefined = undefined
  reason: string | undefined = undefined
  /** For artifacts: how many iterations its `iterate` steps run; 1 without them. */
  iterations = 0
  /** Jobs before this index (in binding order) have ended: {@link fulfilmentOf}'s cursor. */
  ended = 0
  /** The highest iteration among the jobs up to the cursor. */
  reached = 0
  constructor(order: Order) {
    this.order = order
  }
}

export class JobRecord {
  readonly job: Job
  readonly order: OrderRecord
  /**
   * The jobs it reads from: its incoming locks. Like `next` and `attempts`, a shared empty list
   * until it has one (see {@link linkJobs}): a million restored jobs make no million empty lists.
   */
  inputs: readonly JobRecord[] = NO_JOBS
  /** The jobs waiting on it: its outgoing locks. */
  next: readonly JobRecord[] = NO_JOBS
  /** Incoming locks not yet released. */
  held = 0
  /** Unique resource keys, as the dispatch core takes them. */
  readonly uses: string[]
  readonly resources: Resource[]
  /** Its attempts, first to last. */
  attempts: readonly TargetFulfilment[] = NO_ATTEMPTS
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
  /**
   * Whether it leaves a product for the jobs after it ({@link leavesProduct}): the jobs after one
   * that does not wait for its success but read no input from it.
   */
  readonly makesProduct: boolean

  constructor(job: Job, order: OrderRecord, resources: Resource[]) {
    this.job = job
    this.order = order
    this.productId = productOf(job)
    this.makesProduct = leavesProduct(job)
    this.resources = resources
    this.uses =
      resources.length === 0 ? NO_KEYS : resources.filter((r) => r.unique).map((r) => r.key)
  }

  get current(): TargetFulfilment | undefined {
    return this.attempts[this.attempts.length - 1]
  }

  /** Adds an attempt after the others. */
  addAttempt(attempt: TargetFulfilment): void {
    this.attempts = withItem(this.attempts, attempt)
  }
}

const NO_KEYS: string[] = []
const NO_JOBS: readonly JobRecord[] = Object.freeze([])
const NO_ATTEMPTS: readonly TargetFulfilment[] = Object.freeze([])

/** `list` with `item` after the rest: a list of one at first, sized to fit (most have one). */
function withItem<T>(list: readonly T[], item: T): readonly T[] {
  if (list.length === 0) return [item]
  ;(list as T[]).push(item)
  return list
}

/** Makes an order's job records and joins them by its locks. */
export function linkJobs(order: OrderRecord, jobs: Job[], locks: readonly Lock[]): void {
  const byId = new Map<Id, JobRecord>()
  for (const job of jobs) {
    const record = new JobRecord(job, order, job.uses)
    byId.set(job.id, record)
    order.jobs.push(record)
  }
  for (const lock of locks) {
    const from = byId.get(lock.jobId)!
    const to = byId.get(lock.nextId)!
    from.next = withItem(from.next, to)
    to.inputs = withItem(to.inputs, from)
    to.held++
  }
}

/** A job as the dispatch core schedules it, under its product id. */
export function dispatchOptions(job: JobRecord): ScheduleJobOptions {
  const policy = job.job.policy
  return {
    id: job.productId,
    deps: depsOf(job),
    priority: job.order.order.priority,
    target: policy.kind === 'strict' ? policy.target : undefined,
    uses: job.uses.length > 0 ? job.uses : undefined,
    avoid: job.avoid,
    opKind: operationKind(job.job.op),
  }
}

/** The products a job reads, for locality: those of the jobs before it that make one. */
function depsOf(job: JobRecord): string[] | undefined {
  let deps: string[] | undefined
  for (const p of job.inputs) if (p.makesProduct) (deps ??= []).push(p.productId)
  return deps
}

/** The products a job reads, the live targets holding each, and its hash when known. */
export function inputsOf(
  job: JobRecord,
  holders: (productId: string) => string[],
  hashOf: (productId: string) => string | undefined,
): JobInput[] {
  const inputs = job.inputs.every((p) => p.makesProduct)
    ? job.inputs
    : job.inputs.filter((p) => p.makesProduct)
  return inputs.map((p) => {
    const input: JobInput = {
      jobId: p.job.id,
      name: p.job.name,
      productId: p.productId,
      holders: holders(p.productId),
    }
    const hash = hashOf(p.productId)
    if (hash !== undefined) input.hash = hash
    return input
  })
}

/**
 * Where an order stands. Its iteration is the highest one reached by the earliest job not yet
 * ended, in binding order (iterations only grow along it): a cursor that only moves forward, so
 * following an order costs O(1) per job event however many jobs it has.
 */
export function fulfilmentOf(o: OrderRecord): OrderFulfilment {
  let iteration: number | undefined
  if (o.iterations > 1) {
    const jobs = o.jobs
    while (o.ended < jobs.length) {
      const job = jobs[o.ended]!.job
      o.reached = Math.max(o.reached, job.iteration ?? 0)
      if (!finalJobStates.has(job.state)) break
      o.ended++
    }
    iteration = Math.min(o.reached, o.iterations - 1)
  }
  return orderFulfilment({
    order: o.order,
    total: o.jobs.length,
    counts: o.counts,
    startedAt: o.startedAt,
    endedAt: o.endedAt,
    reason: o.reason,
    iterations: o.iterations,
    iteration,
  })
}
