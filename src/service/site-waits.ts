/**
 * Submissions waiting for offline sites (an artifact's order with `waitForSitesMs`): each waits
 * until a target registers, its time is up, or the service closes, and then binds again.
 */
import type { Clock } from '../core/clock.ts'
import { SitesOfflineError } from '../core/errors.ts'

export class SiteWaits {
  private readonly waiting = new Set<() => void>()
  private readonly clock: Clock

  constructor(clock: Clock) {
    this.clock = clock
  }

  /** Resolves when a target registers, after `ms`, or on close: whichever comes first. */
  wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        timer.cancel()
        this.waiting.delete(done)
        resolve()
      }
      const timer = this.clock.setTimeout(done, ms)
      this.waiting.add(done)
    })
  }

  /**
   * Submits, and while the submission is refused with SITES_OFFLINE and a `waitMs`, waits for a
   * target to register (or the time to run out) and submits again; the last refusal is thrown.
   */
  async retrying<T>(submit: () => Promise<T>, closed: () => boolean): Promise<T> {
    let deadline: number | undefined
    for (;;) {
      try {
        return await submit()
      } catch (e) {
        if (!(e instanceof SitesOfflineError) || e.waitMs === 0 || closed()) throw e
        deadline ??= this.clock.now() + e.waitMs
        const left = deadline - this.clock.now()
        if (left <= 0) throw e
        await this.wait(left)
      }
    }
  }

  /** A target registered, or the service closes: every waiter looks again. */
  wake(): void {
    for (const done of [...this.waiting]) done()
  }
}
