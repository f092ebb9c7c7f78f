/**
 * The scheduler service: the engine, made durable. Every call changes the engine at once and
 * answers only when what it changed is stored (group commit: calls that arrive within
 * `commitDelayMs` share one transaction). On start it rebuilds the engine from the store, so a
 * scheduler killed at any instant carries on where its last commit left it.
 */
import type { Clock } from '../core/clock.ts'
import { systemClock } from '../core/clock.ts'
import { Engine } from '../core/engine/engine.ts'
import type { EngineOptions, PacketRecord } from '../core/engine/engine.ts'
import type { EngineEvent } from '../core/engine/events.ts'
import type { OrderFulfilment, TargetFulfilment } from '../core/engine/fulfilment.ts'
import { LockstepError } from '../core/errors.ts'
import { isId } from '../core/ids.ts'
import type { Id } from '../core/ids.ts'
import type { Job, JobResult, Order, Target } from '../core/model.ts'
import { heartbeatSchema } from '../core/protocol.ts'
import type {
  Assignment,
  HeartbeatInput,
  HeartbeatReply,
  TargetRegistration,
} from '../core/protocol.ts'
import { parseInput } from '../core/schema.ts'
import type { Store } from '../store/store.ts'
import { Journal } from './journal.ts'

/** Options of a {@link SchedulerService}. */
export interface SchedulerServiceOptions {
  store: Store
  /** @default the system clock */
  clock?: Clock
  /** The engine's timeouts, lease and initiator id. */
  engine?: Omit<EngineOptions, 'clock'>
  /**
   * How long a change may wait for others to share its commit. 0 commits at the end of the
   * event loop's turn: every request that arrived in that turn shares the transaction. @default 0
   */
  commitDelayMs?: number
  /** Runs a job on the initiator, in this process. @default every job succeeds at once */
  runInitiatorJob?: (assignment: Assignment) => Promise<JobResult> | JobResult
  /** Called once when a commit fails: the service stops taking work. */
  onFatal?: (error: unknown) => void
}

export class SchedulerService {
  readonly engine: Engine
  readonly store: Store
  private readonly journal = new Journal()
  private readonly commitDelayMs: number
  private readonly runInitiatorJob: (a: Assignment) => Promise<JobResult> | JobResult
  private readonly onFatal: ((error: unknown) => void) | undefined
  private waiters: { resolve: () => void; reject: (e: unknown) => void }[] = []
  private inflight: Promise<void> | undefined
  private flushTimer: { cancel(): void } | undefined
  private failure: unknown = undefined
  private closed = false
  private readonly stops = new Map<string, HeartbeatReply['stop']>()
  private initiatorPump = false
  private readonly initiatorRuns = new Set<Promise<void>>()
  private listeners: ((e: EngineEvent) => void)[] = []
  /** Heartbeats waiting for work. */
  private readonly wake = new Set<() => void>()
  /** Events waiting for their commit, kept only while someone listens. */
  private unstored: EngineEvent[] = []

  private constructor(options: SchedulerServiceOptions) {
    this.store = options.store
    this.commitDelayMs = options.commitDelayMs ?? 0
    this.runInitiatorJob = options.runInitiatorJob ?? (() => ({ ok: true }))
    this.onFatal = options.onFatal
    this.engine = new Engine({ ...options.engine, clock: options.clock ?? systemClock })
    this.engine.on((e) => this.record(e))
  }

  /** Migrates the store, rebuilds the engine from it, and stores what recovery changed. */
  static async start(options: SchedulerServiceOptions): Promise<SchedulerService> {
    await options.store.migrate()
    const snapshot = await options.store.load()
    const service = new SchedulerService(options)
    service.engine.restore(snapshot)
    await service.durable()
    service.pumpInitiator()
    return service
  }

  /** Listens to every event once it is stored, in order. */
  on(listener: (e: EngineEvent) => void): () => void {
    this.listeners.push(listener)
    return () => {
      this.listeners = this.listeners.filter((l) => l !== listener)
    }
  }

  // ---- the API ----

  async createPacket(input: unknown): Promise<PacketRecord> {
    this.check()
    const record = this.engine.createPacket(input)
    await this.durable()
    return record
  }

  async orderPacket(
    packetRef: string,
    options: unknown,
    submitter: string,
  ): Promise<OrderFulfilment> {
    this.check()
    const order = this.engine.orderPacket(packetRef, options, submitter)
    await this.durable()
    return order
  }

  async submitPacket(
    input: unknown,
    options: unknown,
    submitter: string,
  ): Promise<OrderFulfilment> {
    this.check()
    const order = this.engine.submitPacket(input, options, submitter)
    await this.durable()
    return order
  }

  async submitArtifact(
    input: unknown,
    options: unknown,
    submitter: string,
  ): Promise<OrderFulfilment> {
    this.check()
    const order = this.engine.submitArtifact(input, options, submitter)
    await this.durable()
    return order
  }

  async cancelOrder(orderId: Id, reason?: string): Promise<OrderFulfilment> {
    this.check()
    if (this.engine.order(orderId) === undefined) {
      const stored = await this.store.order(orderId)
      if (stored === undefined) {
        throw new LockstepError('ORDER_NOT_FOUND', `no order has the id ${orderId}`)
      }
      if (stored.order.state === 'cancelled') return this.fulfilment(orderId)
      throw new LockstepError('ALREADY_FINAL', `order ${orderId} has already ${stored.order.state}`)
    }
    const out = this.engine.cancelOrder(orderId, reason)
    await this.durable()
    return out
  }

  async cancelJob(jobId: Id, reason?: string): Promise<Job> {
    this.check()
    if (this.engine.job(jobId) === undefined) {
      const stored = isId(jobId) ? await this.store.job(jobId) : undefined
      if (stored === undefined)
        throw new LockstepError('JOB_NOT_FOUND', `no job has the id ${jobId}`)
      throw new LockstepError('ALREADY_FINAL', `job ${jobId} has already ${stored.state}`)
    }
    const job = this.engine.cancelJob(jobId, reason)
    await this.durable()
    return job
  }

  async registerTarget(input: TargetRegistration): Promise<Target> {
    this.check()
    const target = this.engine.registerTarget(input)
    await this.durable()
    return target
  }

  async removeTarget(targetId: string): Promise<void> {
    this.check()
    this.engine.removeTarget(targetId)
    await this.durable()
  }

  /**
   * A worker's one call: its results and cache changes in, up to `free` new jobs and the
   * attempts it should stop out. Answers once all of it is stored.
   */
  async heartbeat(
    targetId: string,
    input: HeartbeatInput = {},
    signal?: AbortSignal,
  ): Promise<HeartbeatReply> {
    this.check()
    const body = parseInput(heartbeatSchema, input)
    this.engine.heartbeat(targetId)
    const refused: HeartbeatReply['refused'] = []
    for (const r of body.results ?? []) {
      try {
        this.engine.complete(targetId, r.jobId, r.attempt, r.result)
      } catch (e) {
        if (!(e instanceof LockstepError)) throw e
        refused.push({ jobId: r.jobId, attempt: r.attempt, code: e.code, message: e.message })
      }
    }
    // After the results: an attempt that just finished is reported, not running.
    if (body.running !== undefined) this.engine.heartbeat(targetId, body.running)
    if ((body.added?.length ?? 0) + (body.removed?.length ?? 0) > 0) {
      this.engine.reportCache(targetId, body.added ?? [], body.removed ?? [])
    }
    const free = body.free ?? 0
    let assignments = free > 0 ? this.engine.pick(targetId, free) : []
    let stop = this.takeStops(targetId)
    // A long poll never outlasts half a lease: the worker must not be lost while it waits.
    const waitMs = Math.min(body.waitMs ?? 0, Math.floor(this.engine.leaseMs / 2))
    if (assignments.length === 0 && stop.length === 0 && refused.length === 0 && waitMs > 0) {
      // Results and cache changes are stored before the wait, so none waits on a quiet cluster.
      await this.durable()
      await this.waitForWork(waitMs, signal)
      if (!this.closed && this.failure === undefined && !(signal?.aborted ?? false)) {
        this.engine.heartbeat(targetId)
        if (free > 0) assignments = this.engine.pick(targetId, free)
        stop = this.takeStops(targetId)
      }
    }
    await this.durable()
    return { assignments, refused, stop }
  }

  private takeStops(targetId: string): HeartbeatReply['stop'] {
    const stop = this.stops.get(targetId) ?? []
    this.stops.delete(targetId)
    return stop
  }

  /** Resolves when a job becomes ready or an attempt must stop, or after `ms`. */
  private waitForWork(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer)
        this.wake.delete(done)
        signal?.removeEventListener('abort', done)
        resolve()
      }
      const timer = setTimeout(done, ms)
      this.wake.add(done)
      signal?.addEventListener('abort', done, { once: true })
    })
  }

  /** The order, running or ended. */
  async order(orderId: Id): Promise<Order> {
    const live = this.engine.order(orderId)
    if (live !== undefined) return live
    if (!isId(orderId)) throw notFound(orderId)
    const stored = await this.store.order(orderId)
    if (stored === undefined) {
      throw new LockstepError('ORDER_NOT_FOUND', `no order has the id ${orderId}`)
    }
    return stored.order
  }

  /** Orders, newest first: those in memory and the stored ones. */
  async listOrders(limit: number): Promise<Order[]> {
    return (await this.store.listOrders(limit)).map((o) => this.engine.order(o.order.id) ?? o.order)
  }

  /** One scheduling cycle for push targets; the starts are stored before it returns. */
  async cycle(availability: ReadonlyMap<string, number>): Promise<Assignment[]> {
    this.check()
    const out = this.engine.cycle(availability)
    await this.durable()
    return out
  }

  // ---- queries: the engine for what is in flight, the store for the rest ----

  async fulfilment(orderId: Id): Promise<OrderFulfilment> {
    if (this.engine.order(orderId) !== undefined) return this.engine.fulfilment(orderId)
    if (!isId(orderId)) throw notFound(orderId)
    const stored = await this.store.order(orderId)
    if (stored === undefined) {
      throw new LockstepError('ORDER_NOT_FOUND', `no order has the id ${orderId}`)
    }
    const ended = stored.total - stored.counts.waiting - stored.counts.ready - stored.counts.running
    const out: OrderFulfilment = {
      orderId,
      state: stored.order.state,
      priority: stored.order.priority,
      owner: stored.order.owner,
      total: stored.total,
      counts: stored.counts,
      progress: stored.total === 0 ? 1 : ended / stored.total,
      createdAt: stored.order.createdAt,
    }
    if (stored.iterations > 1) {
      out.iterations = stored.iterations
      out.iteration = stored.iterations - 1
    }
    if (stored.startedAt !== undefined) out.startedAt = stored.startedAt
    if (stored.endedAt !== undefined) out.endedAt = stored.endedAt
    if (stored.reason !== undefined) out.reason = stored.reason
    return out
  }

  async jobs(orderId: Id): Promise<Job[]> {
    if (this.engine.order(orderId) !== undefined) return this.engine.jobs(orderId)
    return this.store.jobs(orderId)
  }

  /** A job, running or ended. */
  async job(jobId: Id): Promise<Job> {
    const live = this.engine.job(jobId)
    if (live !== undefined) return live
    const stored = isId(jobId) ? await this.store.job(jobId) : undefined
    if (stored === undefined) throw new LockstepError('JOB_NOT_FOUND', `no job has the id ${jobId}`)
    return stored
  }

  async attempts(jobId: Id): Promise<TargetFulfilment[]> {
    if (this.engine.job(jobId) !== undefined) return this.engine.attempts(jobId)
    return this.store.attempts(jobId)
  }

  /** Resolves once everything changed so far is stored. */
  durable(): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.unavailable())
    if (this.journal.empty) return this.inflight ?? Promise.resolve()
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }))
  }

  /** Stores what is pending, stops every timer and closes the store. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    for (const wake of [...this.wake]) wake()
    this.engine.stop()
    await Promise.allSettled([...this.initiatorRuns])
    if (this.failure === undefined) {
      this.flushTimer?.cancel()
      this.flushTimer = undefined
      await this.inflight?.catch(() => {})
      if (!this.journal.empty) await this.flush()
    }
    await this.store.close()
  }

  // ---- internals ----

  private check(): void {
    if (this.failure !== undefined || this.closed) throw this.unavailable()
  }

  private unavailable(): LockstepError {
    return new LockstepError(
      'UNAVAILABLE',
      this.failure !== undefined
        ? `the scheduler stopped after a failed commit: ${this.failure instanceof Error ? this.failure.message : 'unknown error'}`
        : 'the scheduler is closed',
    )
  }

  private record(e: EngineEvent): void {
    this.journal.add(e, this.engine)
    if (this.listeners.length > 0) this.unstored.push(e)
    if (e.type === 'attempt:stop' && e.target !== this.engine.initiator) {
      let list = this.stops.get(e.target)
      if (list === undefined) this.stops.set(e.target, (list = []))
      list.push({ jobId: e.jobId, attempt: e.attempt, reason: e.reason })
    }
    if ((e.type === 'job:ready' || e.type === 'attempt:stop') && this.wake.size > 0) {
      for (const wake of [...this.wake]) wake()
    }
    if (e.type === 'job:ready' && !this.initiatorPump) {
      const policy = this.engine.job(e.jobId)?.policy
      if (policy?.kind === 'strict' && policy.target === this.engine.initiator) {
        this.initiatorPump = true
        queueMicrotask(() => this.pumpInitiator())
      }
    }
    this.scheduleFlush()
  }

  private scheduleFlush(): void {
    if (this.flushTimer !== undefined || this.inflight !== undefined || this.closed) return
    const run = () => {
      this.flushTimer = undefined
      void this.flush()
    }
    if (this.commitDelayMs === 0) {
      const handle = setImmediate(run)
      this.flushTimer = { cancel: () => clearImmediate(handle) }
    } else {
      const handle = setTimeout(run, this.commitDelayMs)
      this.flushTimer = { cancel: () => clearTimeout(handle) }
    }
  }

  private async flush(): Promise<void> {
    if (this.inflight !== undefined || this.journal.empty || this.failure !== undefined) return
    const batch = this.journal.take(this.engine)
    const waiters = this.waiters
    this.waiters = []
    const events = this.unstored
    this.unstored = []
    const commit = this.store.commit(batch)
    this.inflight = commit
    try {
      await commit
    } catch (error) {
      // The engine is ahead of the store now; only a restart from the store is safe.
      this.failure = error
      this.engine.stop()
      for (const w of [...waiters, ...this.waiters.splice(0)]) w.reject(this.unavailable())
      this.onFatal?.(error)
      return
    } finally {
      this.inflight = undefined
    }
    // Ended orders leave memory once stored: the engine keeps what is in flight.
    for (const e of batch.events) {
      if (e.orderId !== undefined && /^order:(succeeded|failed|cancelled)$/.test(e.type)) {
        if (this.engine.order(e.orderId)?.state !== 'running') this.engine.forgetOrder(e.orderId)
      }
    }
    for (const w of waiters) w.resolve()
    for (const e of events) for (const listener of this.listeners) listener(e)
    if (!this.journal.empty) this.scheduleFlush()
  }

  /** Runs the initiator's ready jobs in this process, each once its start is stored. */
  private pumpInitiator(): void {
    this.initiatorPump = false
    if (this.closed || this.failure !== undefined) return
    const assignments = this.engine.pick(this.engine.initiator, 10_000)
    if (assignments.length === 0) return
    const run = (async () => {
      await this.durable()
      await Promise.all(
        assignments.map(async (a) => {
          let result: JobResult
          try {
            result = await this.runInitiatorJob(a)
          } catch (e) {
            result = { ok: false, reason: 'error', message: String(e) }
          }
          if (this.closed || this.failure !== undefined) return
          try {
            this.engine.complete(this.engine.initiator, a.jobId, a.attempt, result)
          } catch (e) {
            if (!(e instanceof LockstepError)) throw e
          }
        }),
      )
    })().catch(() => {})
    this.initiatorRuns.add(run)
    void run.finally(() => this.initiatorRuns.delete(run))
  }
}

function notFound(orderId: string): LockstepError {
  return new LockstepError('ORDER_NOT_FOUND', `no order has the id ${orderId}`)
}
