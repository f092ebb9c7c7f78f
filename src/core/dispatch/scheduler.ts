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
 * The stages and the timer that moves jobs through them are in `stage-timers.ts`, with the two
 * places where Lockstep goes beyond the seed.
 *
 * Every queue is a heap ordered by priority, then age, with lazy deletion: a job leaves the
 * queues it was in by changing state, and a heap discards such entries when they reach its top.
 * A pick costs O(log n) amortised in the number of queued jobs.
 */
import type { JobResult } from '../model.ts'
import type { PendingJob } from './dispatch-state.ts'
import { DONE, DispatchJob, RUNNING, TargetQueues, WAITING } from './dispatch-state.ts'
import type { Entry } from './dispatch-state.ts'
import { EntryTable } from './entry-table.ts'
import { Heap } from './heap.ts'
import { checkJob, compileSchedulerOptions } from './options.ts'
import type { ScheduleJobOptions, SchedulerOptions } from './options.ts'
import { avoids, cycleTarget } from './placement.ts'
import { Best, RANK_FIRST, RANK_GLOBAL, RANK_SECOND } from './ranking.ts'
import { ResourceTable } from './resource-table.ts'
import { StageTimers, firstStage } from './stage-timers.ts'
import { WaitingPicks } from './waiting-picks.ts'
import { waitReason } from './wait-reason.ts'
import type { WaitReason } from './wait-reason.ts'

export type { PendingJob } from './dispatch-state.ts'
export type { ScheduleJobOptions, SchedulerOptions } from './options.ts'
export { describeWaitReason } from './wait-reason.ts'
export type { WaitReason } from './wait-reason.ts'

/**
 * Decides which target runs which job. Pure and in memory: the service around it persists what
 * it decides. See the module comment for the queue semantics.
 */
export class Scheduler {
  private readonly entries = new EntryTable()
  private readonly targets = new Map<string, TargetQueues>()
  private readonly global = new Heap<DispatchJob>()
  private readonly resources = new ResourceTable<DispatchJob>((job) => this.unpark(job))
  private readonly stages: StageTimers
  private readonly picks = new WaitingPicks<TargetQueues, DispatchJob>()
  /** Reused by every choice of the best queue top: choosing allocates no candidate. */
  private readonly best = new Best<DispatchJob, Heap<DispatchJob>, TargetQueues>()
  private seq = 0
  private mark = 0
  private waiting = 0
  private running = 0
  private stopped = false

  constructor(options: SchedulerOptions) {
    const { clock, cacheTimeoutMs, depsTimeoutMs } = compileSchedulerOptions(options)
    this.stages = new StageTimers(clock, cacheTimeoutMs, depsTimeoutMs, (job) =>
      this.stageEnded(job),
    )
  }

  /**
   * Registers a worker (or any target), or brings a lost one back. A `strictOnly` target (the
   * initiator) takes only the jobs strict to it, never one from the global or local queues.
   */
  registerWorker(workerId: string, options?: { strictOnly?: boolean }): void {
    const t = this.target(workerId)
    if (options?.strictOnly !== undefined) t.strictOnly = options.strictOnly
  }

  /**
   * Forgets a worker that is gone: its cached products, its local queues and its pending picks
   * (which resolve with null). Jobs strict to it keep waiting for it to come back.
   */
  removeWorker(workerId: string): void {
    const t = this.targets.get(workerId)
    if (t === undefined) return
    t.live = false
    t.first.clear()
    t.second.clear()
    this.picks.cancel(t)
    this.entries.dropTarget(t)
  }

  /**
   * Schedules a job, or returns the pending job already scheduled under this id. The returned
   * object stays the same until the job completes.
   */
  scheduleJob(options: ScheduleJobOptions): PendingJob {
    const entry = this.entries.entry(options.id)
    if (entry.pending !== undefined) return entry.pending
    const priority = checkJob(options)
    const strict = options.target === undefined ? undefined : this.target(options.target, false)
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
    this.enqueue(job)
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
    const strict = options.target === undefined ? undefined : this.target(options.target, false)
    const job = new DispatchJob(options, entry, undefined, strict, priority, this.seq++, 3)
    entry.pending = job
    job.state = RUNNING
    job.runningOn = this.target(workerId, false)
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
    const t = this.target(workerId)
    if (!this.picks.has(t)) {
      const job = this.take(t)
      if (job !== null) return Promise.resolve(job)
    }
    return this.picks.wait(t, signal)
  }

  /** Takes the best job `workerId` may run now, or null; never waits. */
  tryPickJob(workerId: string): PendingJob | null {
    if (this.stopped) return null
    return this.take(this.target(workerId))
  }

  /**
   * Records that `workerId` completed `jobId`. A successful result puts the product in the
   * worker's cache, also for a job nobody scheduled. Returns true if a pending job was finished;
   * its `result` is set before this returns and its `finished` resolves with it.
   */
  onJobComplete(workerId: string, jobId: string, result: JobResult): boolean {
    const entry = result.ok ? this.entries.entry(jobId) : this.entries.get(jobId)
    if (entry === undefined) return false
    const ranOn = entry.pending?.runningOn
    const finished = this.finish(entry, result)
    if (result.ok) this.cached(entry, ranOn?.id === workerId ? ranOn : this.target(workerId))
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
    this.cached(this.entries.entry(productId), this.target(workerId))
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
    return waitReason(job, this.resources, this.targets.values())
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
    for (const [id, n] of availability) if (n > 0) slots.set(this.target(id), Math.floor(n))
    const best = this.best
    const skipped: [Heap<DispatchJob>, DispatchJob][] = []
    for (;;) {
      // Read out before anything else chooses: the choice is reused.
      best.reset()
      for (const [t, n] of slots) if (n > 0) this.offerOwn(t)
      this.offerGlobal()
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

  private target(id: string, live = true): TargetQueues {
    let t = this.targets.get(id)
    if (t === undefined) {
      t = new TargetQueues(id)
      t.live = live
      this.targets.set(id, t)
    } else if (live) {
      t.live = true
    }
    return t
  }

  private cached(entry: Entry, t: TargetQueues): void {
    if (!this.entries.addHolder(entry, t) || t.strictOnly) return
    const own = entry.pending
    if (own !== undefined && own.state === WAITING && !own.parked && own.strict === undefined) {
      t.first.push(own, own.key)
      this.serve(t)
    }
    const waiters = entry.waiters
    if (waiters === undefined) return
    let pushed = false
    for (const job of waiters) {
      if (job.state === WAITING && !job.parked && job.stage >= 2) {
        t.second.push(job, job.key)
        pushed = true
      }
    }
    if (pushed) this.serve(t)
  }

  /** Puts a waiting job into every queue its stage and the cache give it, and wakes pickers. */
  private enqueue(job: DispatchJob): void {
    const strict = job.strict
    if (strict !== undefined) {
      strict.strict.push(job, job.key)
      if (strict.live) this.serve(strict)
      return
    }
    const holders = job.entry.holders
    if (holders !== undefined) {
      for (const t of holders) {
        if (!t.live || t.strictOnly) continue
        t.first.push(job, job.key)
        this.serve(t)
      }
    }
    if (job.stage >= 2) this.enqueueSecond(job)
    if (job.stage === 3) this.enqueueGlobal(job)
  }

  private enqueueSecond(job: DispatchJob): void {
    const deps = job.deps
    if (deps === undefined) return
    const mark = ++this.mark
    for (const dep of deps) {
      const holders = dep.holders
      if (holders === undefined) continue
      for (const t of holders) {
        if (t.mark === mark || !t.live || t.strictOnly) continue
        t.mark = mark
        t.second.push(job, job.key)
        this.serve(t)
      }
    }
  }

  private enqueueGlobal(job: DispatchJob): void {
    this.global.push(job, job.key)
    this.serveAny()
  }

  /** A job whose locality stage ended enters the queues its new stage opens, unless parked. */
  private stageEnded(job: DispatchJob): void {
    if (job.parked) return
    if (job.stage === 2) this.enqueueSecond(job)
    else this.enqueueGlobal(job)
  }

  /**
   * The best valid job on top of `heap`, discarding entries that are stale: jobs no longer
   * waiting, parked, or in a local queue whose cache entry was evicted.
   */
  private top(
    heap: Heap<DispatchJob>,
    rank: number,
    t: TargetQueues | undefined,
  ): DispatchJob | undefined {
    for (;;) {
      const job = heap.peek()
      if (job === undefined) return undefined
      if (
        job.state === WAITING &&
        !job.parked &&
        (rank === RANK_GLOBAL || (rank === RANK_FIRST ? job.entry.holds(t!) : holdsAnyDep(job, t!)))
      ) {
        return job
      }
      heap.pop()
    }
  }

  /** Offers {@link best} the valid tops of `t`'s own queues: first local, second local, strict. */
  private offerOwn(t: TargetQueues): void {
    const best = this.best
    best.offer(this.top(t.first, RANK_FIRST, t), RANK_FIRST, t.first, t)
    best.offer(this.top(t.second, RANK_SECOND, t), RANK_SECOND, t.second, t)
    best.offer(this.top(t.strict, RANK_GLOBAL, t), RANK_GLOBAL, t.strict, t)
  }

  private offerGlobal(): void {
    const global = this.global
    this.best.offer(this.top(global, RANK_GLOBAL, undefined), RANK_GLOBAL, global, undefined)
  }

  /** Takes the best job `t` may run now, or null. */
  private take(t: TargetQueues): DispatchJob | null {
    if (!t.live) return null
    const best = this.best
    let skipped: [Heap<DispatchJob>, DispatchJob][] | undefined
    let taken: DispatchJob | null = null
    for (;;) {
      best.reset()
      this.offerOwn(t)
      if (!t.strictOnly) this.offerGlobal()
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
    this.enqueue(job)
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

function holdsAnyDep(job: DispatchJob, t: TargetQueues): boolean {
  const deps = job.deps
  if (deps === undefined) return false
  for (const dep of deps) if (dep.holds(t)) return true
  return false
}
