/**
 * The push loop: the caller of the engine's scheduling cycle. Whenever work may have appeared (a
 * job became ready, an attempt ended, a locality delay ran out) it asks every push target for
 * its free slots, runs one cycle over them, hands each started attempt to its driver, and
 * reports the outcome back through the service.
 *
 * Invariants: one cycle at a time (a request during a cycle runs one more after it); a driver
 * is never handed more attempts than the availability it reported; an outcome is reported once,
 * and a refusal (the attempt was cancelled or lost meanwhile) is dropped, as a worker drops it.
 */
import { LockstepError } from '../core/errors.ts'
import type { RunningAttempt } from '../core/protocol.ts'
import type { SchedulerService } from '../service/service.ts'
import type { AttemptOutcome, TargetDriver } from './target-driver.ts'

/** Options of a {@link PushLoop}. */
export interface PushLoopOptions {
  /**
   * How often the loop looks again with nothing to wake it, so that jobs held back for
   * locality reach a push target once their delay runs out. @default 250
   */
  idleMs?: number
  /** Reports an unexpected failure (the cycle itself failed). @default ignored */
  onError?: (error: unknown) => void
}

export class PushLoop {
  private readonly service: SchedulerService
  private readonly drivers: Map<string, TargetDriver>
  private readonly idleMs: number
  private readonly onError: (error: unknown) => void
  private readonly runs = new Set<Promise<void>>()
  private off: (() => void) | undefined
  private timer: NodeJS.Timeout | undefined
  private cycling: Promise<void> | undefined
  private again = false
  private closed = false

  constructor(
    service: SchedulerService,
    drivers: readonly TargetDriver[],
    options: PushLoopOptions = {},
  ) {
    this.service = service
    this.drivers = new Map(drivers.map((d) => [d.id, d]))
    this.idleMs = options.idleMs ?? 250
    this.onError = options.onError ?? (() => {})
  }

  /**
   * Registers the drivers' targets and runs the first cycle. A driver that can resume is handed
   * the attempts the store says it runs, and their outcomes are awaited as a started one's are;
   * for any other driver, those attempts are lost as it registers.
   */
  async start(): Promise<void> {
    for (const driver of this.drivers.values()) {
      if (driver.registration === undefined) continue
      const running = driver.resume === undefined ? [] : this.service.runningOn(driver.id)
      await this.service.registerTarget({ ...driver.registration, running })
      // Told even when nothing runs: until then, a driver keeps what it finds on its target.
      if (driver.resume !== undefined) {
        const outcomes = driver.resume(running)
        running.forEach((a, i) => this.follow(driver, a, outcomes[i]!))
      }
    }
    this.off = this.service.on((e) => {
      if (e.type === 'job:ready') this.wake()
      else if (e.type === 'attempt:stop') {
        this.drivers.get(e.target)?.stop({ jobId: e.jobId, attempt: e.attempt, reason: e.reason })
      }
    })
    this.arm()
    this.wake()
  }

  /** Runs a cycle soon; many wake-ups before it runs make one cycle. */
  wake(): void {
    if (this.closed) return
    if (this.cycling !== undefined) {
      this.again = true
      return
    }
    this.cycling = this.cycle()
      .catch((e: unknown) => {
        // A scheduler stopping, or a database failing (the service says so once), is no error
        // of the loop's: the next wake-up tries again.
        const expected =
          e instanceof LockstepError && (e.code === 'UNAVAILABLE' || e.code === 'STORE_UNAVAILABLE')
        if (!expected) this.onError(e)
      })
      .finally(() => {
        this.cycling = undefined
        if (this.again) {
          this.again = false
          this.wake()
        }
      })
  }

  /** Stops cycling and waits for the attempts in flight to end. */
  async close(): Promise<void> {
    this.closed = true
    this.off?.()
    clearTimeout(this.timer)
    await this.cycling
    await Promise.all([...this.drivers.values()].map((d) => d.close()))
    await Promise.allSettled([...this.runs])
  }

  private arm(): void {
    this.timer = setTimeout(() => {
      this.wake()
      this.arm()
    }, this.idleMs)
    this.timer.unref()
  }

  private async cycle(): Promise<void> {
    const availability = new Map<string, number>()
    for (const [id, driver] of this.drivers) {
      const n = driver.availability()
      if (n > 0) availability.set(id, n)
    }
    if (availability.size === 0) return
    const started = await this.service.cycle(availability)
    for (const a of started) {
      const driver = this.drivers.get(a.target)!
      this.follow(driver, a, driver.start(a))
    }
  }

  /** Reports an attempt's outcome once it comes, then looks for more work. */
  private follow(driver: TargetDriver, a: RunningAttempt, outcome: Promise<AttemptOutcome>): void {
    const run = outcome
      .then(async (outcome: AttemptOutcome) => {
        if (this.closed) return
        try {
          await this.service.complete(driver.id, a, outcome.result, outcome)
        } catch (e) {
          // A stale attempt (cancelled or lost meanwhile) is dropped, as a worker drops it.
          if (!(e instanceof LockstepError && e.code === 'STALE_ATTEMPT')) throw e
        }
        driver.recorded?.(a)
      })
      .catch((e: unknown) => {
        if (!(e instanceof LockstepError)) this.onError(e)
      })
      .finally(() => {
        this.runs.delete(run)
        this.wake()
      })
    this.runs.add(run)
  }
}
