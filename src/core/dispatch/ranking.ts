/**
 * The order in which waiting jobs come out: higher priority first; at equal priority a job from a
 * target's first local queue before its second local queue before the global queue (or a queue of
 * jobs strict to the target, which ranks with the global one); then the oldest first.
 *
 * Inside one queue the rank is the same for every job, so a heap orders by {@link heapKey} alone;
 * across queues {@link beats} adds the rank. {@link Best} keeps the best of several queue tops, for
 * `pickJob` and the push cycle alike, in fields it reuses: choosing allocates nothing.
 *
 * Pure: no state beyond a {@link Best} that its owner resets.
 */

/** The rank of a target's first local queue: its product is cached there. */
export const RANK_FIRST = 0
/** The rank of a target's second local queue: one of its inputs is cached there. */
export const RANK_SECOND = 1
/** The rank of the global queue, and of a target's queue of jobs strict to it. */
export const RANK_GLOBAL = 2

/** What ranking reads of a job. */
export interface Ranked {
  /** 1–100, higher first. */
  readonly priority: number
  /** The order of scheduling: lower is older. */
  readonly seq: number
}

// Room for 2^40 jobs scheduled in one process: (100 - priority) * 2^40 + seq stays below 2^53,
// so the key is an exact integer and sorts like the pair it encodes.
const SEQ_SPAN = 2 ** 40

/** Priority, then age, as one number: lower comes out first. */
export function heapKey(priority: number, seq: number): number {
  return (100 - priority) * SEQ_SPAN + seq
}

/** True when job `a` from a queue of rank `ra` comes before `b` from rank `rb`. */
export function beats(a: Ranked, ra: number, b: Ranked, rb: number): boolean {
  // The same job on top of two queues: the better queue is the one to take it from.
  if (a === b) return ra < rb
  if (a.priority !== b.priority) return a.priority > b.priority
  if (ra !== rb) return ra < rb
  return a.seq < b.seq
}

/**
 * The best of the queue tops offered since the last {@link Best.reset}, with the queue it came
 * from and that queue's target. One instance serves every choice: the caller reads the fields
 * into locals before it does anything that could choose again.
 */
export class Best<J extends Ranked, Q, T> {
  job: J | undefined = undefined
  rank = RANK_GLOBAL
  queue: Q | undefined = undefined
  /** The target whose queue it is; undefined for the global queue. */
  target: T | undefined = undefined

  reset(): void {
    this.job = undefined
    this.queue = undefined
    this.target = undefined
  }

  /** Keeps `job`, on top of `queue` of rank `rank`, if it beats the best so far. */
  offer(job: J | undefined, rank: number, queue: Q, target: T | undefined): void {
    if (job === undefined) return
    if (this.job !== undefined && !beats(job, rank, this.job, this.rank)) return
    this.job = job
    this.rank = rank
    this.queue = queue
    this.target = target
  }
}
