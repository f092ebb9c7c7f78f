/**
 * The recent past of the scheduler, for the dashboard's charts and for scripts: a bounded ring of
 * points, one per interval (10 s by default, 360 kept: the last hour), each with the jobs
 * running, ready and waiting at its end, the jobs that succeeded and failed per second during
 * it, and the median group-commit latency over it.
 *
 * Invariants: memory is bounded (`capacity` points, and at most `maxSamples` commit latencies
 * per interval); the timer runs on the service's clock, is unref'd (it never keeps a process
 * alive) and is cancelled by {@link StatsHistory.stop}; a point's rates cover exactly the
 * events recorded between its start and its end.
 */
import type { Clock, Timer } from '../core/clock.ts'
import type { JobCounts } from '../core/engine/fulfilment.ts'

/** One point of the history. */
export interface StatsPoint {
  /** When the interval ended, in Unix milliseconds. */
  at: number
  /** Jobs of the orders in flight, at `at`. */
  jobs: { running: number; ready: number; waiting: number }
  /** Jobs that succeeded during the interval, per second. */
  succeededPerS: number
  /** Attempts that ended a job as failed during the interval, per second. */
  failedPerS: number
  /**
   * The median time a group commit took during the interval (one store transaction, from the
   * batch handed to the store to its commit), in ms; null when nothing was committed.
   */
  commitMs: number | null
}

/** Options of a {@link StatsHistory}. */
export interface StatsHistoryOptions {
  clock: Clock
  /** The jobs in flight by state, read at the end of each interval. */
  jobs: () => JobCounts
  /** How long one point covers. @default 10000 */
  intervalMs?: number
  /** How many points are kept. @default 360 */
  capacity?: number
}

/** Commit latencies kept per interval; a busier interval keeps the first ones. */
const maxSamples = 10_000

export class StatsHistory {
  private readonly clock: Clock
  private readonly jobs: () => JobCounts
  private readonly intervalMs: number
  private readonly capacity: number
  /** The ring: `points[(start + i) % capacity]` is the i-th oldest of `size`. */
  private readonly points: StatsPoint[] = []
  private start = 0
  private size = 0
  private succeeded = 0
  private failed = 0
  private commits: number[] = []
  private since: number
  private timer: Timer | undefined

  constructor(options: StatsHistoryOptions) {
    this.clock = options.clock
    this.jobs = options.jobs
    this.intervalMs = options.intervalMs ?? 10_000
    this.capacity = options.capacity ?? 360
    this.since = this.clock.now()
    this.arm()
  }

  /** An event the service stored or is about to: job ends are counted. */
  event(type: string): void {
    if (type === 'job:succeeded') this.succeeded++
    else if (type === 'job:failed') this.failed++
  }

  /** A group commit took `ms`. */
  committed(ms: number): void {
    if (this.commits.length < maxSamples) this.commits.push(ms)
  }

  /** The points, oldest first. */
  read(): StatsPoint[] {
    const out: StatsPoint[] = []
    for (let i = 0; i < this.size; i++) out.push(this.points[(this.start + i) % this.capacity]!)
    return out
  }

  /** Stops sampling; the points taken stay readable. */
  stop(): void {
    this.timer?.cancel()
    this.timer = undefined
  }

  private arm(): void {
    this.timer = this.clock.setTimeout(() => this.sample(), this.intervalMs)
    this.timer.unref?.()
  }

  private sample(): void {
    const at = this.clock.now()
    const seconds = Math.max(at - this.since, 1) / 1000
    const counts = this.jobs()
    this.push({
      at,
      jobs: { running: counts.running, ready: counts.ready, waiting: counts.waiting },
      succeededPerS: this.succeeded / seconds,
      failedPerS: this.failed / seconds,
      commitMs: median(this.commits),
    })
    this.since = at
    this.succeeded = 0
    this.failed = 0
    this.commits = []
    this.arm()
  }

  private push(point: StatsPoint): void {
    if (this.size < this.capacity) {
      this.points[(this.start + this.size) % this.capacity] = point
      this.size++
    } else {
      this.points[this.start] = point
      this.start = (this.start + 1) % this.capacity
    }
  }
}

function median(values: number[]): number | null {
  if (values.length === 0) return null
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}
