/**
 * The locality stages of 003. A waiting job is in the first local queue of every worker that
 * holds its product from the start (stage 1). It widens to the second local queues of the
 * workers holding one of its dependencies' products (stage 2) when it was cached nowhere when
 * scheduled, or once it has waited `cacheTimeoutMs`; `depsTimeoutMs` after that stage began it
 * enters the global queue (stage 3). A stage is a function of the time since the job was
 * scheduled, never of the order in which jobs and cache reports arrive.
 *
 * Beyond the seed: a job with no dependencies has no second-queue stage to wait in and enters the
 * global queue at once; a job strict to one target waits in that target's own queue, with no
 * locality stages, since nobody else may run it.
 *
 * One clock timer serves every job: it is set for the earliest due time and moves every job whose
 * stage has ended when it fires.
 */
import type { Clock, Timer } from '../clock.ts'
import type { DispatchJob, Stage } from './dispatch-state.ts'
import { WAITING } from './dispatch-state.ts'
import { Heap } from './heap.ts'

/** The stage a job starts in, from what is known when it is scheduled. */
export function firstStage(strict: boolean, cached: boolean, hasDeps: boolean): Stage {
  if (strict) return 3
  if (cached) return 1
  return hasDeps ? 2 : 3
}

export class StageTimers {
  private readonly clock: Clock
  private readonly cacheTimeoutMs: number
  private readonly depsTimeoutMs: number
  private readonly entered: (job: DispatchJob) => void
  /** Jobs by the time their stage ends; a job that stopped waiting is dropped when it comes up. */
  private readonly due = new Heap<DispatchJob>()
  private timer: Timer | undefined = undefined
  private timerDue = Infinity
  private stopped = false

  /**
   * @param entered called when a waiting job's stage has ended and it is in its new `stage`
   * (2 or 3), to put it into the queues that stage opens. It may be parked; the caller checks.
   */
  constructor(
    clock: Clock,
    cacheTimeoutMs: number,
    depsTimeoutMs: number,
    entered: (job: DispatchJob) => void,
  ) {
    this.clock = clock
    this.cacheTimeoutMs = cacheTimeoutMs
    this.depsTimeoutMs = depsTimeoutMs
    this.entered = entered
  }

  /** Sets when a new job's first stage ends; a job that starts in stage 3 has nothing to wait for. */
  begin(job: DispatchJob): void {
    if (job.stage === 3) return
    job.stageDue = this.clock.now() + (job.stage === 1 ? this.cacheTimeoutMs : this.depsTimeoutMs)
    this.due.push(job, job.stageDue)
    if (job.stageDue < this.timerDue) this.arm(job.stageDue)
  }

  /** Cancels the timer; none is set again. */
  stop(): void {
    this.stopped = true
    this.timer?.cancel()
    this.timer = undefined
    this.timerDue = Infinity
  }

  private arm(due: number): void {
    if (this.stopped) return
    this.timer?.cancel()
    this.timerDue = due
    this.timer = this.clock.setTimeout(() => this.fire(), Math.max(0, due - this.clock.now()))
  }

  /** Moves every job whose stage has ended on to the next stage. */
  private fire(): void {
    this.timer = undefined
    this.timerDue = Infinity
    const now = this.clock.now()
    for (;;) {
      const job = this.due.peek()
      if (job === undefined) break
      if (job.stageDue > now) {
        this.arm(job.stageDue)
        break
      }
      this.due.pop()
      if (job.state !== WAITING) continue
      // A stage ends at its due time, not when the timer got round to it: the next stage is
      // counted from there, so late timers do not stretch the delays.
      const endedAt = job.stageDue
      if (job.stage === 1 && job.deps !== undefined) {
        job.stage = 2
        job.stageDue = endedAt + this.depsTimeoutMs
        this.due.push(job, job.stageDue)
      } else {
        job.stage = 3
        job.stageDue = Infinity
      }
      this.entered(job)
    }
  }
}
