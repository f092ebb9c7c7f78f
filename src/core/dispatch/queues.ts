/**
 * Where waiting jobs wait (003): one global queue, and per target a first and a second local
 * queue and a queue of the jobs strict to it. A waiting job is in the first local queue of every
 * live target holding its product, in stage 2 also in the second local queue of every live target
 * holding one of its dependencies' products, and in stage 3 also in the global queue; a strict job
 * is in its target's strict queue only. A cache report, a stage's end or a freed resource adds the
 * job to the queues it now belongs to, so membership does not depend on the order of events.
 *
 * Every queue is a heap ordered by priority, then age, with lazy deletion: a job leaves the
 * queues it was in by changing state, and a heap discards such entries when they reach its top
 * ({@link validTop}). A pick costs O(log n) amortised in the number of queued jobs. Whoever takes
 * a job pops it from the queue {@link Best} names.
 *
 * A target runs some operation kinds only (`TargetQueues.runs`). So that a pick never wades
 * through jobs it may not take, the global queue and each strict queue are split by kind, and a
 * target looks only at the heaps of the kinds it runs; a job enters no local queue of a target
 * that does not run its kind, and one that stopped running it (registered again) discards such
 * entries at the top like any stale one. The cost is a few more heap tops to compare per pick.
 */
import type { DispatchJob, Entry } from './dispatch-state.ts'
import { KIND_COUNT, TargetQueues, WAITING, kindBit, runsJob } from './dispatch-state.ts'
import { Heap } from './heap.ts'
import { Best, RANK_FIRST, RANK_GLOBAL, RANK_SECOND } from './ranking.ts'

/** How many jobs wait in each dispatch queue (see {@link Queues.depths}). */
export interface QueueDepths {
  /** Jobs in the global queue. */
  global: number
  /** By target id: jobs in its first local queue (it holds their product) and its second (it holds an input). */
  targets: Map<string, { firstLocal: number; secondLocal: number }>
}

export class Queues {
  /** Every target ever named, live or not. */
  readonly targets = new Map<string, TargetQueues>()
  /** The global queue, one heap per operation kind (`kindIndex`). */
  private readonly global: Heap<DispatchJob>[] = Array.from(
    { length: KIND_COUNT },
    () => new Heap<DispatchJob>(),
  )
  /** Reused by every choice of the best queue top: choosing allocates no candidate. */
  private readonly best = new Best<DispatchJob, Heap<DispatchJob>, TargetQueues>()
  private mark = 0
  private readonly arrived: (t: TargetQueues) => void
  private readonly arrivedGlobal: () => void

  /**
   * @param arrived called after a job entered a queue of live target `t`, to serve its picks.
   * @param arrivedGlobal called after a job entered the global queue.
   */
  constructor(arrived: (t: TargetQueues) => void, arrivedGlobal: () => void) {
    this.arrived = arrived
    this.arrivedGlobal = arrivedGlobal
  }

  /** The target under `id`, made if there is none; `live` brings it (back) to life. */
  target(id: string, live = true): TargetQueues {
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

  /** Puts a waiting, unparked job into every queue its stage and the cache give it. */
  enqueue(job: DispatchJob): void {
    const strict = job.strict
    if (strict !== undefined) {
      strict.strict[job.kindIndex]!.push(job, job.key)
      if (strict.live && runsJob(strict, job)) this.arrived(strict)
      return
    }
    const holders = job.entry.holders
    if (holders !== undefined) {
      for (const t of holders) {
        if (!t.live || t.strictOnly || !runsJob(t, job)) continue
        t.first.push(job, job.key)
        this.arrived(t)
      }
    }
    if (job.stage >= 2) this.enqueueSecond(job)
    if (job.stage === 3) this.enqueueGlobal(job)
  }

  /** A job whose locality stage ended enters the queues its new stage opens, unless parked. */
  stageEnded(job: DispatchJob): void {
    if (job.parked) return
    if (job.stage === 2) this.enqueueSecond(job)
    else this.enqueueGlobal(job)
  }

  /** `t` has just begun to hold the product of `entry`: the jobs waiting for that join its queues. */
  cached(entry: Entry, t: TargetQueues): void {
    if (t.strictOnly) return
    const own = entry.pending
    if (
      own !== undefined &&
      own.state === WAITING &&
      !own.parked &&
      own.strict === undefined &&
      runsJob(t, own)
    ) {
      t.first.push(own, own.key)
      this.arrived(t)
    }
    const waiters = entry.waiters
    if (waiters === undefined) return
    let pushed = false
    for (const job of waiters) {
      if (job.state === WAITING && !job.parked && job.stage >= 2 && runsJob(t, job)) {
        t.second.push(job, job.key)
        pushed = true
      }
    }
    if (pushed) this.arrived(t)
  }

  /**
   * How many jobs stand in each queue now: the global one, and each target's first and second
   * local queues. Stale entries are left out, so it walks every entry: for reports, not picks.
   */
  depths(): QueueDepths {
    const targets = new Map<string, { firstLocal: number; secondLocal: number }>()
    for (const t of this.targets.values()) {
      targets.set(t.id, {
        firstLocal: standing([t.first], RANK_FIRST, t),
        secondLocal: standing([t.second], RANK_SECOND, t),
      })
    }
    return { global: standing(this.global, RANK_GLOBAL), targets }
  }

  /** The best valid job `t` may take from its own queues and, unless strict-only, the global one. */
  bestFor(t: TargetQueues): Best<DispatchJob, Heap<DispatchJob>, TargetQueues> {
    this.best.reset()
    this.offerOwn(t)
    if (!t.strictOnly) this.offerGlobal(t.runs)
    return this.best
  }

  /** The best valid job in the queues of the targets with free `slots`, and in the global queue. */
  bestAmong(
    slots: ReadonlyMap<TargetQueues, number>,
  ): Best<DispatchJob, Heap<DispatchJob>, TargetQueues> {
    this.best.reset()
    // Only the global jobs some target with a free slot runs: the others would be skipped.
    let runs = 0
    for (const [t, n] of slots) {
      if (n <= 0) continue
      this.offerOwn(t)
      if (!t.strictOnly) runs |= t.runs
    }
    this.offerGlobal(runs)
    return this.best
  }

  private enqueueSecond(job: DispatchJob): void {
    const deps = job.deps
    if (deps === undefined) return
    const mark = ++this.mark
    for (const dep of deps) {
      const holders = dep.holders
      if (holders === undefined) continue
      for (const t of holders) {
        if (t.mark === mark || !t.live || t.strictOnly || !runsJob(t, job)) continue
        t.mark = mark
        t.second.push(job, job.key)
        this.arrived(t)
      }
    }
  }

  private enqueueGlobal(job: DispatchJob): void {
    this.global[job.kindIndex]!.push(job, job.key)
    this.arrivedGlobal()
  }

  /**
   * Offers {@link best} the valid tops of `t`'s own queues: first local, second local, and its
   * strict queues of the kinds it runs.
   */
  private offerOwn(t: TargetQueues): void {
    const best = this.best
    best.offer(validTop(t.first, RANK_FIRST, t), RANK_FIRST, t.first, t)
    best.offer(validTop(t.second, RANK_SECOND, t), RANK_SECOND, t.second, t)
    for (let k = 0; k < KIND_COUNT; k++) {
      const bit = kindBit(k)
      if ((t.runs & bit) !== bit) continue
      const strict = t.strict[k]!
      if (strict.size > 0) best.offer(validTop(strict, RANK_GLOBAL, t), RANK_GLOBAL, strict, t)
    }
  }

  /** Offers {@link best} the valid tops of the global queues of the kinds in mask `runs`. */
  private offerGlobal(runs: number): void {
    for (let k = 0; k < KIND_COUNT; k++) {
      const bit = kindBit(k)
      if ((runs & bit) !== bit) continue
      const global = this.global[k]!
      if (global.size > 0) {
        this.best.offer(validTop(global, RANK_GLOBAL, undefined), RANK_GLOBAL, global, undefined)
      }
    }
  }
}

/**
 * The best valid job on top of `heap`, a queue of rank `rank` owned by `t` (none for the global
 * queue), discarding entries that are stale: jobs no longer waiting, parked, or in a local queue
 * whose cache entry was evicted.
 */
function validTop(
  heap: Heap<DispatchJob>,
  rank: number,
  t: TargetQueues | undefined,
): DispatchJob | undefined {
  for (;;) {
    const job = heap.peek()
    if (job === undefined) return undefined
    if (isValid(job, rank, t)) return job
    heap.pop()
  }
}

/** Whether an entry of a queue of rank `rank` owned by `t` still stands (see {@link validTop}). */
function isValid(job: DispatchJob, rank: number, t: TargetQueues | undefined): boolean {
  return (
    job.state === WAITING &&
    !job.parked &&
    (rank === RANK_GLOBAL ||
      (runsJob(t!, job) && (rank === RANK_FIRST ? job.entry.holds(t!) : holdsAnyDep(job, t!))))
  )
}

/** The jobs standing in `heaps`, each counted once, stale entries left out. */
function standing(heaps: readonly Heap<DispatchJob>[], rank: number, t?: TargetQueues): number {
  const seen = new Set<DispatchJob>()
  for (const heap of heaps) heap.forEach((job) => isValid(job, rank, t) && seen.add(job))
  return seen.size
}

function holdsAnyDep(job: DispatchJob, t: TargetQueues): boolean {
  const deps = job.deps
  if (deps === undefined) return false
  for (const dep of deps) if (dep.holds(t)) return true
  return false
}
