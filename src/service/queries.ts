/**
 * The read model: what the server, the metrics, the CLI and the dashboard read. The engine
 * answers for what is in flight, the store for what has ended; a caller cannot tell which
 * answered, except that an ended order has no wait reasons left.
 *
 * Invariant: a read scoped to an owner answers another owner's order or job exactly as one that
 * does not exist (same code, same message), so a scoped caller learns nothing of others' work.
 */
import type { Engine, JobWait } from '../core/engine/engine.ts'
import { orderFulfilment } from '../core/engine/fulfilment.ts'
import type { JobCounts, OrderFulfilment, TargetFulfilment } from '../core/engine/fulfilment.ts'
import { describeJobWait } from '../core/engine/wait-text.ts'
import { LockstepError } from '../core/errors.ts'
import { isId } from '../core/ids.ts'
import type { Id } from '../core/ids.ts'
import { finalJobStates } from '../core/model.ts'
import type { Job, Lock, Order, Target } from '../core/model.ts'
import type { JobInput, RunningAttempt } from '../core/protocol.ts'
import type {
  AttemptsOnTarget,
  OrderKey,
  OrderQuery,
  OrderWithCounts,
  Store,
  StoredEvent,
} from '../store/store.ts'

/**
 * A job as listed with its order: why it waits, while it waits, and the artefacts its latest
 * attempt reported, when it reported any.
 */
export type ListedJob = Job & { wait?: WordedWait | undefined; artefacts?: string[] }

/** Why a job waits, with the same in words (see `describeJobWait`). */
export type WordedWait = JobWait & { text: string }

/** One job in full: its attempts, its inputs and where they are, and why it waits. */
export interface JobDetail {
  job: Job
  attempts: TargetFulfilment[]
  inputs: JobInput[]
  wait: WordedWait | undefined
}

/** One page of orders as {@link Queries.findOrders} reads it. */
export interface OrderPage<T> {
  orders: T[]
  /** Every order the filters match, on every page. */
  total: number
  /** Where the next page starts; absent on the last page. */
  next?: OrderKey
}

/** A registered target as the API lists it. */
export interface TargetStatus {
  target: Target
  live: boolean
  /** Attempts it runs now. */
  running: number
  /** Jobs in its first local queue (it holds their product) and its second (it holds an input). */
  queues: { firstLocal: number; secondLocal: number }
  /** When it last heartbeated (workers only), in Unix milliseconds. */
  lastHeartbeatAt?: number
  /**
   * Why it takes no work now, when its driver knows (a cluster that does not answer, a
   * kubeconfig that cannot be read). Absent while it is healthy.
   */
  problem?: string
}

/** Who holds a product, with the URL each serves it from when it has one. */
export interface ProductHolder {
  target: string
  url?: string
}

/** The figures of `GET /v1/stats`: the numbers the metrics show, and the global queue. */
export interface Overview {
  /** Jobs of the orders in flight, by state. */
  jobs: JobCounts
  /**
   * `global`: jobs in the global queue (any target may take them); `waiting`: every job ready
   * and waiting for a target, in any queue (the metric `lockstep_queue_depth`).
   */
  queues: { global: number; waiting: number }
  /** Orders in flight. */
  orders: number
  /** Targets connected now. */
  targets: number
}

/** Counts for the metrics. */
export interface ServiceStats {
  /** Jobs of the orders in flight, by state. */
  jobs: JobCounts
  /** Orders in flight, held in memory. */
  orders: number
  /** Jobs ready and waiting for a target. */
  queued: number
  /** Targets connected now. */
  targets: number
  /** Attempts running now. */
  running: number
  /** Cache announcements not believed (planted products), since the scheduler started. */
  refusedAnnouncements: number
}

export class Queries {
  private readonly engine: Engine
  private readonly store: Store
  /** What push targets' drivers say keeps them from work, by target id. */
  private readonly problems = new Map<string, string>()

  constructor(engine: Engine, store: Store) {
    this.engine = engine
    this.store = store
  }

  /** The order, running or ended; given an `owner`, only if it is theirs. */
  async order(orderId: Id, owner?: string): Promise<Order> {
    const order = this.engine.order(orderId) ?? (await this.storedOrder(orderId)).order
    if (owner !== undefined && order.owner !== owner) throw orderNotFound(orderId)
    return order
  }

  /** An order's fulfilment, running or ended. */
  async fulfilment(orderId: Id): Promise<OrderFulfilment> {
    if (this.engine.order(orderId) !== undefined) return this.engine.fulfilment(orderId)
    return storedFulfilment(await this.storedOrder(orderId))
  }

  /** The log's events after `afterSeq`, oldest first: only the store has them all. */
  storedEvents(afterSeq: number, limit: number, orderId?: Id): Promise<StoredEvent[]> {
    return this.store.events(afterSeq, limit, orderId)
  }

  /** Orders with their fulfilment, newest first, in one store read: all, or one owner's. */
  async listOrders(limit: number, owner?: string): Promise<OrderFulfilment[]> {
    return (await this.store.listOrders(limit, owner)).map((o) => this.current(o))
  }

  /**
   * One page of the orders a query matches, each with its fulfilment, and how many match in all.
   * The store holds every order, so it filters, sorts and pages; the engine's fulfilment
   * replaces the stored one for an order in flight, as in {@link listOrders}. An order whose
   * state in memory has moved past the state filter is left out of its page.
   */
  async findOrders(query: OrderQuery): Promise<OrderPage<OrderFulfilment>> {
    const page = await this.store.findOrders(query)
    const states = query.states === undefined ? undefined : new Set(query.states)
    const orders = page.orders
      .map((o) => this.current(o))
      .filter((f) => states === undefined || states.has(f.state))
    return { ...page, orders }
  }

  /**
   * An order's jobs in their order, each waiting one with why it waits, each with the artefacts
   * its latest attempt reported.
   */
  async jobs(orderId: Id): Promise<ListedJob[]> {
    if (this.engine.order(orderId) === undefined) {
      await this.storedOrder(orderId)
      const jobs: ListedJob[] = await this.store.jobs(orderId)
      const reported = new Map(
        (await this.store.artefacts(orderId)).map((r) => [r.jobId, r.artefacts]),
      )
      return jobs.map((job) => {
        const artefacts = reported.get(job.id)
        return artefacts === undefined ? job : { ...job, artefacts }
      })
    }
    return this.engine.jobs(orderId).map((job) => {
      const listed: ListedJob =
        finalJobStates.has(job.state) || job.state === 'running'
          ? job
          : { ...job, wait: this.worded(this.engine.explain(job.id)) }
      const artefacts = this.engine.attempts(job.id).at(-1)?.artefacts
      return artefacts === undefined ? listed : { ...listed, artefacts }
    })
  }

  /**
   * An order's locks, running or ended. They are stored with the order and never change after
   * (a lock is released, never removed), so the store answers for both.
   */
  async locks(orderId: Id): Promise<Lock[]> {
    if (this.engine.order(orderId) === undefined) await this.storedOrder(orderId)
    return (await this.store.locks(orderId)).map(({ jobId, nextId }) => ({ jobId, nextId }))
  }

  /** A job, running or ended; given an `owner`, only if its order is theirs. */
  async job(jobId: Id, owner?: string): Promise<Job> {
    const job = this.engine.job(jobId) ?? (isId(jobId) ? await this.store.job(jobId) : undefined)
    if (job === undefined) throw jobNotFound(jobId)
    if (owner !== undefined && (await this.order(job.orderId)).owner !== owner) {
      throw jobNotFound(jobId)
    }
    return job
  }

  /** Every attempt of a job, first first. */
  async attempts(jobId: Id): Promise<TargetFulfilment[]> {
    if (this.engine.job(jobId) !== undefined) return [...this.engine.attempts(jobId)]
    return this.store.attempts(jobId)
  }

  /** A job with its attempts, inputs and why it waits; given an `owner`, only theirs. */
  async jobDetail(jobId: Id, owner?: string): Promise<JobDetail> {
    const job = await this.job(jobId, owner)
    const live = this.engine.job(job.id) !== undefined
    return {
      job,
      attempts: await this.attempts(job.id),
      inputs: live ? this.engine.inputs(job.id) : [],
      wait: live ? this.worded(this.engine.explain(job.id)) : undefined,
    }
  }

  /** Why a job in flight has not started; undefined once it runs or has ended. */
  explain(jobId: Id): JobWait | undefined {
    return this.engine.job(jobId) === undefined ? undefined : this.engine.explain(jobId)
  }

  /**
   * Every registered target: whether it is live, its queue depths, its last heartbeat, and any
   * problem its driver reported.
   */
  targets(): TargetStatus[] {
    const depths = this.engine.queueDepths().targets
    return this.engine.targets().map((t) => {
      const queues = depths.get(t.target.id) ?? { firstLocal: 0, secondLocal: 0 }
      const problem = this.problems.get(t.target.id)
      return problem === undefined ? { ...t, queues } : { ...t, queues, problem }
    })
  }

  /** Says why a push target takes no work now, or, with undefined, that it is healthy again. */
  reportProblem(targetId: string, problem: string | undefined): void {
    if (problem === undefined) this.problems.delete(targetId)
    else this.problems.set(targetId, problem)
  }

  /** A registered target. */
  target(targetId: string): Target | undefined {
    return this.engine.target(targetId)
  }

  /** The attempts running on a target now, as the engine holds them. */
  runningOn(targetId: string): RunningAttempt[] {
    return this.engine.runningOn(targetId).map(({ jobId, attempt }) => ({ jobId, attempt }))
  }

  /**
   * The attempts on a registered target, newest first; given an `owner`, only those of that
   * owner's orders. The engine answers for the attempts of orders in flight (a running attempt
   * is in memory before its start is stored, and its end before that is), the store for the
   * rest. TARGET_NOT_FOUND for a target never registered.
   */
  async attemptsOnTarget(targetId: string, which: AttemptsOnTarget): Promise<TargetFulfilment[]> {
    if (this.engine.target(targetId) === undefined) {
      throw new LockstepError('TARGET_NOT_FOUND', `no target is registered as '${targetId}'`)
    }
    const { limit, state, owner } = which
    const running = this.engine
      .runningOn(targetId)
      .filter((f) => owner === undefined || this.engine.order(f.orderId)?.owner === owner)
    if (state === 'running') return newestFirst(running).slice(0, limit)
    // The stored rows of the running attempts may be among the newest: read as many more.
    const stored = await this.store.attemptsOnTarget(targetId, {
      limit: limit + running.length,
      state,
      owner,
    })
    const found = new Map<string, TargetFulfilment>()
    for (const f of stored) {
      const current =
        this.engine.job(f.jobId) === undefined ? f : this.engine.attempts(f.jobId)[f.attempt - 1]
      found.set(`${f.jobId}#${f.attempt}`, current ?? f)
    }
    if (state === undefined) for (const f of running) found.set(`${f.jobId}#${f.attempt}`, f)
    const all = [...found.values()].filter((f) => state === undefined || f.state === state)
    return newestFirst(all).slice(0, limit)
  }

  /** Every live target holding a product, with the URL each serves it from. */
  holders(productId: string): ProductHolder[] {
    return this.engine.holders(productId).map((id) => {
      const url = this.engine.target(id)?.url
      return url === undefined ? { target: id } : { target: id, url }
    })
  }

  stats(): ServiceStats {
    const s = this.engine.stats()
    return { ...s, orders: this.engine.listOrders().length }
  }

  /** The figures of `GET /v1/stats`, from the numbers the metrics read. */
  overview(): Overview {
    const s = this.stats()
    const queues = { global: this.engine.queueDepths().global, waiting: s.queued }
    return { jobs: s.jobs, queues, orders: s.orders, targets: s.targets }
  }

  /** A wait with its words, the jobs it names by name while they are in memory. */
  private worded(wait: JobWait | undefined): WordedWait | undefined {
    if (wait === undefined) return undefined
    return { ...wait, text: describeJobWait(wait, (id) => this.engine.job(id)?.name) }
  }

  /** A listed order's fulfilment: the engine's while it is in flight, else the stored one. */
  private current(o: OrderWithCounts): OrderFulfilment {
    const id = o.order.id
    return this.engine.order(id) !== undefined ? this.engine.fulfilment(id) : storedFulfilment(o)
  }

  private async storedOrder(orderId: Id): Promise<OrderWithCounts> {
    const stored = isId(orderId) ? await this.store.order(orderId) : undefined
    if (stored === undefined) throw orderNotFound(orderId)
    return stored
  }
}

/** Attempts newest first, as the store orders them: by start, then job id, then attempt. */
function newestFirst(attempts: TargetFulfilment[]): TargetFulfilment[] {
  const started = (f: TargetFulfilment) => f.transitions[0]?.at ?? 0
  return attempts.sort(
    (a, b) =>
      started(b) - started(a) ||
      (a.jobId === b.jobId ? b.attempt - a.attempt : a.jobId < b.jobId ? 1 : -1),
  )
}

function orderNotFound(orderId: string): LockstepError {
  return new LockstepError('ORDER_NOT_FOUND', `no order has the id ${orderId}`)
}

function jobNotFound(jobId: string): LockstepError {
  return new LockstepError('JOB_NOT_FOUND', `no job has the id ${jobId}`)
}

/** The fulfilment of an order the engine has let go of, from what the store keeps. */
function storedFulfilment(s: OrderWithCounts): OrderFulfilment {
  return orderFulfilment({
    order: s.order,
    total: s.total,
    counts: s.counts,
    startedAt: s.startedAt,
    endedAt: s.endedAt,
    reason: s.reason,
    iterations: s.iterations,
  })
}
