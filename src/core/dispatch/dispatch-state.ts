/**
 * The records the dispatch core keeps: an {@link Entry} per id (product, pending job, readers), a
 * {@link DispatchJob} per scheduled job, and a {@link TargetQueues} per target. They refer to each
 * other, so they live together; the pieces that change them each own one concern.
 */
import type { JobResult, OperationKind } from '../model.ts'
import { Heap } from './heap.ts'
import type { ScheduleJobOptions } from './options.ts'
import { heapKey } from './ranking.ts'
import type { PickRequest } from './waiting-picks.ts'

/** A scheduled job, as the caller sees it. */
export interface PendingJob<J extends ScheduleJobOptions = ScheduleJobOptions> {
  /** The job as it was scheduled. */
  readonly job: J
  /** Set once the job is complete, before `onJobComplete` returns. */
  readonly result: JobResult | undefined
  /** The target running the job, once picked. */
  readonly worker: string | undefined
  /** Resolves with the result when the job completes. */
  readonly finished: Promise<JobResult>
}

export const WAITING = 0
export const RUNNING = 1
export const DONE = 2

/**
 * Operation kinds as small numbers: a job's kind is an index into a target's per-kind queues,
 * and what a target runs is a mask of bits. Index 0 is a job that names no kind: every target
 * runs it, so its bit is 0.
 */
export const KIND_COUNT = 4
const KIND_INDEX: Readonly<Record<OperationKind, number>> = { builtin: 1, exec: 2, image: 3 }

/** The index of a kind; 0 for none. */
export function kindIndex(kind: OperationKind | undefined): number {
  return kind === undefined ? 0 : KIND_INDEX[kind]
}

/** The bit of a kind index in a {@link TargetQueues.runs} mask. */
export function kindBit(index: number): number {
  return index === 0 ? 0 : 1 << (index - 1)
}

/** A mask of the kinds in `kinds`. */
export function kindMask(kinds: readonly OperationKind[]): number {
  let mask = 0
  for (const k of kinds) mask |= kindBit(KIND_INDEX[k])
  return mask
}

/** Every kind: a target that declared nothing runs everything. */
export const ALL_KINDS = kindMask(['builtin', 'exec', 'image'])

/** True when `t` runs the kind of operation `job` runs. */
export function runsJob(t: TargetQueues, job: DispatchJob): boolean {
  return (t.runs & job.kindBit) === job.kindBit
}

/** Stage 1: first local queues only. Stage 2: also second local queues. Stage 3: also global. */
export type Stage = 1 | 2 | 3

/**
 * Everything the scheduler knows under one id: the product (who holds it), the pending job of
 * that id, and the waiting jobs that read the product. One map lookup per id serves them all.
 */
export class Entry {
  readonly id: string
  pending: DispatchJob | undefined = undefined
  /** The targets holding the product. */
  holders: TargetQueues[] | undefined = undefined
  /** Waiting flexible jobs that read this product, for cache reports that come after them. */
  waiters: DispatchJob[] | undefined = undefined
  /** How many of `waiters` have stopped waiting; the list is compacted when half have. */
  gone = 0

  constructor(id: string) {
    this.id = id
  }

  holds(t: TargetQueues): boolean {
    return this.holders !== undefined && this.holders.includes(t)
  }
}

export class DispatchJob implements PendingJob {
  readonly job: ScheduleJobOptions
  readonly entry: Entry
  /** The entries of the products it reads (flexible jobs only). */
  readonly deps: Entry[] | undefined
  /** The target it is strict to. */
  readonly strict: TargetQueues | undefined
  readonly priority: number
  readonly seq: number
  /** Its place in every queue it enters; see {@link heapKey}. */
  readonly key: number
  /** Its operation kind as an index ({@link kindIndex}) and a bit ({@link kindBit}). */
  readonly kindIndex: number
  readonly kindBit: number
  state = WAITING
  stage: Stage
  /** When the current stage ends; Infinity in stage 3. */
  stageDue = Infinity
  /** Waiting for a unique resource: out of every queue until the resource is freed. */
  parked = false
  /** The target running the job. */
  runningOn: TargetQueues | undefined = undefined
  result: JobResult | undefined = undefined
  private promise: Promise<JobResult> | undefined = undefined
  private resolve: ((result: JobResult) => void) | undefined = undefined

  constructor(
    job: ScheduleJobOptions,
    entry: Entry,
    deps: Entry[] | undefined,
    strict: TargetQueues | undefined,
    priority: number,
    seq: number,
    stage: Stage,
  ) {
    this.job = job
    this.entry = entry
    this.deps = deps
    this.strict = strict
    this.priority = priority
    this.seq = seq
    this.key = heapKey(priority, seq)
    this.kindIndex = kindIndex(job.opKind)
    this.kindBit = kindBit(this.kindIndex)
    this.stage = stage
  }

  // Made on first use: most callers never wait on it, and a promise per queued job is costly.
  get finished(): Promise<JobResult> {
    if (this.promise === undefined) {
      if (this.result !== undefined) this.promise = Promise.resolve(this.result)
      else this.promise = new Promise((resolve) => (this.resolve = resolve))
    }
    return this.promise
  }

  get worker(): string | undefined {
    return this.runningOn?.id
  }

  finish(result: JobResult): void {
    this.state = DONE
    this.result = result
    this.resolve?.(result)
  }
}

/** A target's queues: the two local queues of 003, and the queue of jobs strict to it. */
export class TargetQueues {
  readonly id: string
  live = true
  readonly first = new Heap<DispatchJob>()
  readonly second = new Heap<DispatchJob>()
  /**
   * The jobs strict to it, one heap per operation kind ({@link kindIndex}): the kinds it does not
   * run wait in theirs, and a pick never looks at them.
   */
  readonly strict: Heap<DispatchJob>[] = Array.from(
    { length: KIND_COUNT },
    () => new Heap<DispatchJob>(),
  )
  /** Takes only the jobs strict to it: it has no local queues and no share of the global one. */
  strictOnly = false
  /** The operation kinds it runs, as a mask of {@link kindBit}s. */
  runs = ALL_KINDS
  /** Why it refuses the kinds it does not run, in words for a wait reason (a way to change it). */
  refusal: string | undefined = undefined
  /** Waiting, unparked jobs strict to this target: the slots a cycle keeps for them. */
  strictWaiting = 0
  /** Its waiting picks, oldest first; see `WaitingPicks`. */
  readonly picks: PickRequest<DispatchJob>[] = []
  /** Marks the target as already visited in one walk over several products. */
  mark = 0

  constructor(id: string) {
    this.id = id
  }
}
