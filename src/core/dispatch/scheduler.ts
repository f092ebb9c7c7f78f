/**
 * The dispatch core: ScheduleJob / PickJob / OnJobComplete / LocateArtifact of the build-farm seed
 * (003), with the priorities, target policies and unique resources of the Kubernetes seed (002).
 *
 * Queues (003): one global queue and two local queues per worker. A waiting job is always in the
 * first local queue of every worker that holds its product. It enters the second local queue of
 * every worker holding one of its dependencies' products when it was cached nowhere at
 * `scheduleJob`, or once it has waited `cacheTimeoutMs`; `depsTimeoutMs` after that stage began
 * it enters the global queue. Membership is a function of the cache and of the time since the job
 * was scheduled, never of the order in which jobs and cache reports arrive.
 *
 * The {@link Scheduler} keeps each job's life (waiting, running, done) and composes the pieces that
 * keep those promises, each with its own state: the queues (`queues.ts`), the locality stages and
 * their timer (`stage-timers.ts`, where the exceptions to the seed are), the cache index
 * (`entry-table.ts`), the unique resources (`resource-table.ts`), the picks waiting for work
 * (`waiting-picks.ts`), the order jobs come out in (`ranking.ts`) and where a job runs when
 * several targets could (`placement.ts`).
 */
import type { JobResult, OperationKind } from '../model.ts'
import type { PendingJob } from './dispatch-state.ts'
import { ALL_KINDS, DONE, DispatchJob, RUNNING, WAITING, kindMask } from './dispatch-state.ts'
import type { Entry, TargetQueues } from './dispatch-state.ts'
import { EntryTable } from './entry-table.ts'
import type { Heap } from './heap.ts'
import { checkJob, compileSchedulerOptions } from './options.ts'
import type { ScheduleJobOptions, SchedulerOptions } from './options.ts'
import { avoids, cycleTarget } from './placement.ts'
import { Queues } from './queues.ts'
import type { QueueDepths } from './queues.ts'
import { ResourceTable } from './resource-table.ts'
import { StageTimers, firstStage } from './stage-timers.ts'
import { WaitingPicks } from './waiting-picks.ts'
import { waitReason } from './wait-reason.ts'
import type { WaitReason } from './wait-reason.ts'

export type { PendingJob } from './dispatch-state.ts'
export type { ScheduleJobOptions, SchedulerOptions } from './options.ts'
export { describeWaitReason } from './wait-reason.ts'
export type { WaitReason } from './wait-reason.ts'
export type { QueueDepths } from './queues.ts'

/**
 * Decides which target runs which job. Pure and in memory: the service around it persists what
 * it decides. See the module comment for the queue semantics.
 */
export class Scheduler {
  private readonly entries = new EntryTable()
  private readonly queues = new Queues(
    (t) => this.serve(t),
    () => this.serveAny(),
  )
  /** Every target ever named, live or not. */
  private readonly targets = this.queues.targets
  private readonly resources = new ResourceTable<DispatchJob>((job) => this.unpark(job))
  private readonly stages: StageTimers
  private readonly picks = new WaitingPicks<TargetQueues, DispatchJob>()
  private seq = 0
  private waiting = 0
  private running = 0
  private stopped = false

  constructor(options: SchedulerOptions) {
    const { clock, cacheTimeoutMs, depsTimeoutMs } = compileSchedulerOptions(options)
    this.stages = new StageTimers(clock, cacheTimeoutMs, depsTimeoutMs, (job) =>
      this.queues.stageEnded(job),
    )
  }

  /**
   * Registers a worker (or any target), or brings a lost one back. A `strictOnly` target (the
   * initiator) takes only the jobs strict to it, never one from the global or local queues. A
   * target with `runs` takes only jobs of those operation kinds (and jobs that name none); a job
   * of another kind waits for a target that runs it, and `refusal` says in a few words why this
   * one does not (shown in the wait reason). Without `runs` it runs every kind.
   */
  registerWorker(
    workerId: string,
    options?: { strictOnly?: boolean; runs?: readonly OperationKind[]; refusal?: string },
  ): void {
    const t = this.queues.target(workerId)
    if (options?.strictOnly !== undefined) t.strictOnly = options.strictOnly
    if (options?.runs !== undefined || options?.refusal !== undefined) {
      const runs = options.runs === undefined ? ALL_KINDS : kindMask(options.runs)
      t.refusal = options.refusal
      if (runs !== t.runs) {
        t.runs = runs
        // Jobs of a kind it now runs may be waiting for it.
        this.serve(t)
      }
    }
  }

  /**
   * Forgets a worker that is gone: its cached products, its local queues and its pending picks
   * (which resolve with null). Jobs strict to it keep waiting for it to come back. Answers the
   * products it held.
   */
  removeWorker(workerId: string): string[] {
    const t = this.targets.get(workerId)
    if (t === undefined) return []
    t.live = false
    t.first.clear()
    t.second.clear()
    this.picks.cancel(t)
    return this.entries.dropTarget(t)
  }

  /**
   * Schedules a job, or returns the pending job already scheduled under this id. The returned
   * object stays the same until the job completes.
   */
  scheduleJob(options: ScheduleJobOptions): PendingJob {
    const entry = this.entries.entry(options.id)
    if (entry.pending !== undefined) return entry.pending
    const priority = checkJob(options)
    const strict =
      options.target === undefined ? undefined : this.queues.target(options.target, false)
    let deps: Entry[] | undefined
    if (strict === undefined && options.deps !== undefined && options.deps.length > 0) {
      deps = new Array<Entry>(options.deps.length)
      for (let i = 0; i < options.deps.length; i++) deps[i] = this.entries.entry(options.deps[i]!)
    }
    const stage = firstStage(strict !== undefined, entry.holders !== undefined, deps !== undefined)
    const job = new DispatchJob(options, entry, deps, strict, priority, this.seq++, stage)
    entry.pending = job
    this.waiting++
    this.stages.begin(job)
    this.entries.addWaiter(job)
    if (strict !== undefined) strict.strictWaiting++
    this.queues.enqueue(job)
    return job
  }

  /**
   * Records a job that already runs on `workerId`, as after a restart of the process around
   * the scheduler: it holds its unique resources and completes like any picked job.
   */
  scheduleRunning(options: ScheduleJobOptions, workerId: string): PendingJob {
    const entry = this.entries.entry(options.id)
    if (entry.pending !== undefined) return entry.pending
    const priority = checkJob(options)
    const strict =
      options.target === undefined ? undefined : this.queues.target(options.target, false)
    const job = new DispatchJob(options, entry, undefined, strict, priority, this.seq++, 3)
    entry.pending = job
    job.state = RUNNING
    job.runningOn = this.queues.target(workerId, false)
    this.running++
    this.resources.hold(job, options.uses)
    return job
  }

  /**
   * Takes the best job `workerId` may run, waiting until there is one. Resolves with null when
   * `signal` aborts or the scheduler stops.
   */
  pickJob(workerId: string, signal?: AbortSignal): Promise<PendingJob | null> {
    if (this.stopped || signal?.aborted === true) return Promise.resolve(null)
    const t = this.queues.target(workerId)
    if (!this.picks.has(t)) {
      const job = this.take(t)
      if (job !== null) return Promise.resolve(job)
    }
    return this.picks.wait(t, signal)
  }

  /** Takes the best job `workerId` may run now, or null; never waits. */
  tryPickJob(workerId: string): PendingJob | null {
    if (this.stopped) return null
    return this.take(this.queues.target(workerId))
  }

  /**
   * Records that `workerId` completed `jobId`. A successful result puts the product in the
   * worker's cache, also for a job nobody scheduled, unless `keep` is false (a job that leaves
   * no product). Returns true if a pending job was finished;
   * its `result` is set before this returns and its `finished` resolves with it.
   */
  onJobComplete(workerId: string, jobId: string, result: JobResult, keep = true): boolean {
    const kept = result.ok && keep
    const entry = kept ? this.entries.entry(jobId) : this.entries.get(jobId)
    if (entry === undefined) return false
    const ranOn = entry.pending?.runningOn
    const finished = this.finish(entry, result)
    if (kept) this.cached(entry, ranOn?.id === workerId ? ranOn : this.queues.target(workerId))
    else this.entries.collect(entry)
    return finished
  }

  /** Ends a waiting or running job without a product (cancelled, lost); true if there was one. */
  cancelJob(jobId: string, result: JobResult = { ok: false, reason: 'cancelled' }): boolean {
    const entry = this.entries.get(jobId)
    if (entry === undefined) return false
    const finished = this.finish(entry, result)
    this.entries.collect(entry)
    return finished
  }

  /** Records that `workerId` holds `productId` in its cache. */
  addCached(workerId: string, productId: string): void {
    this.cached(this.entries.entry(productId), this.queues.target(workerId))
  }

  /** Records that `workerId` no longer holds `productId`. */
  removeCached(workerId: string, productId: string): void {
    const entry = this.entries.get(productId)
    const t = this.targets.get(workerId)
    if (entry !== undefined && t !== undefined && entry.holds(t)) this.entries.dropHolder(entry, t)
  }

  /** Any live target holding the product of `jobId`. */
  locateArtifact(jobId: string): string | undefined {
    return this.entries.get(jobId)?.holders?.[0]?.id
  }

  /** Every live target holding the product of `jobId`. */
  holders(productId: string): string[] {
    return this.entries.get(productId)?.holders?.map((t) => t.id) ?? []
  }

  /** The pending job under this id, waiting or running. */
  get(jobId: string): PendingJob | undefined {
    return this.entries.get(jobId)?.pending
  }

  /** Why a job still waits; undefined when it is not waiting (running, done or unknown). */
  explain(jobId: string): WaitReason | undefined {
    const job = this.entries.get(jobId)?.pending
    if (job === undefined || job.state !== WAITING) return undefined
    return waitReason(job, this.resources, this.targets)
  }

  /**
   * One scheduling cycle for push targets: assigns waiting jobs to the free slots in
   * `availability`, best job first (priority, then locality, then age). It leaves no slot empty
   * while a job it may run waits, outside a locality delay; and a flexible job goes where slots
   * are spare before it takes a slot that a job strict to that target waits for.
   */
  cycle(availability: ReadonlyMap<string, number>): { jobId: string; target: string }[] {
    const assignments: { jobId: string; target: string }[] = []
    if (this.stopped) return assignments
    const slots = new Map<TargetQueues, number>()
    for (const [id, n] of availability) if (n > 0) slots.set(this.queues.target(id), Math.floor(n))
    const skipped: [Heap<DispatchJob>, DispatchJob][] = []
    for (;;) {
      // Read out before anything else chooses: the choice is reused.
      const best = this.queues.bestAmong(slots)
      const job = best.job
      if (job === undefined) break
      const heap = best.queue!
      const from = best.target
      heap.pop()
      if (!this.resources.free(job.job.uses)) {
        this.park(job)
        continue
      }
      const target = cycleTarget(job, from, slots, this.targets)
      if (target === undefined) {
        skipped.push([heap, job])
        continue
      }
      this.start(job, target)
      slots.set(target, slots.get(target)! - 1)
      assignments.push({ jobId: job.job.id, target: target.id })
    }
    for (const [heap, job] of skipped) heap.push(job, job.key)
    return assignments
  }

  /** Ends every timer and pending pick; later picks resolve with null at once. */
  stop(): void {
    this.stopped = true
    this.stages.stop()
    this.picks.cancelAll()
  }

  /** Counts for metrics: waiting and running jobs, live targets, pending picks. */
  /** How many jobs wait in each queue, stale entries left out: O(queued), for reports. */
  queueDepths(): QueueDepths {
    return this.queues.depths()
  }

  stats(): { waiting: number; running: number; targets: number; idle: number } {
    let live = 0
    for (const t of this.targets.values()) if (t.live) live++
    return {
      waiting: this.waiting,
      running: this.running,
      targets: live,
      idle: this.picks.idle.size,
    }
  }

  // ---- internals ----

  /** Records that `t` holds the product of `entry`; the jobs waiting for that join its queues. */
  private cached(entry: Entry, t: TargetQueues): void {
    if (this.entries.addHolder(entry, t)) this.queues.cached(entry, t)
  }

  /** Takes the best job `t` may run now, or null. */
  private take(t: TargetQueues): DispatchJob | null {
    if (!t.live) return null
    let skipped: [Heap<DispatchJob>, DispatchJob][] | undefined
    let taken: DispatchJob | null = null
    for (;;) {
      const best = this.queues.bestFor(t)
      const job = best.job
      if (job === undefined) break
      const heap = best.queue!
      heap.pop()
      if (avoids(job, t, this.targets)) {
        ;(skipped ??= []).push([heap, job])
        continue
      }
      if (!this.resources.free(job.job.uses)) {
        this.park(job)
        continue
      }
      this.start(job, t)
      taken = job
      break
    }
    if (skipped !== undefined) for (const [heap, job] of skipped) heap.push(job, job.key)
    return taken
  }

  /** Takes a job out of the queues until the first busy resource it needs is freed. */
  private park(job: DispatchJob): void {
    job.parked = true
    if (job.strict !== undefined) job.strict.strictWaiting--
    this.resources.park(job, job.job.uses!)
  }

  /** A job parked on a freed resource goes back into its queues, if it still waits there. */
  private unpark(job: DispatchJob): void {
    if (job.state !== WAITING || !job.parked) return
    job.parked = false
    if (job.strict !== undefined) job.strict.strictWaiting++
    this.queues.enqueue(job)
  }

  private start(job: DispatchJob, t: TargetQueues): void {
    job.state = RUNNING
    job.runningOn = t
    this.running++
    this.resources.hold(job, job.job.uses)
    this.leftWaiting(job)
  }

  /** Bookkeeping for a job that stopped waiting (started, or finished while waiting). */
  private leftWaiting(job: DispatchJob): void {
    this.waiting--
    if (job.strict !== undefined && !job.parked) job.strict.strictWaiting--
    job.parked = false
    this.entries.removeWaiter(job)
  }

  private finish(entry: Entry, result: JobResult): boolean {
    const job = entry.pending
    if (job === undefined) return false
    entry.pending = undefined
    const wasRunning = job.state === RUNNING
    if (job.state === WAITING) {
      job.state = DONE
      this.leftWaiting(job)
    }
    job.finish(result)
    if (wasRunning) {
      this.running--
      // Frees its resources and puts the jobs parked on them back into their queues.
      this.resources.release(job, job.job.uses)
    }
    return true
  }

  /** Serves `t`'s waiting picks while it has some and there are jobs it may take. */
  private serve(t: TargetQueues): void {
    while (this.picks.has(t)) {
      const job = this.take(t)
      if (job === null) return
      this.picks.answer(t, job)
    }
  }

  /** After a job entered the global queue: serves idle targets, oldest first, until one takes it. */
  private serveAny(): void {
    const idle = this.picks.idle
    if (idle.size === 0) return
    for (const t of idle) {
      const before = t.picks.length
      this.serve(t)
      if (t.picks.length < before) return
    }
  }
}
