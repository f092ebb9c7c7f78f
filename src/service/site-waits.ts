/**
 * Submissions waiting for offline sites (an artifact's order with `waitForSitesMs`): each waits
 * until a target registers, its time is up, or the service closes, and then binds again.
 */
import type { Clock } from '../core/clock.ts'

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

  /** A target registered, or the service closes: every waiter looks again. */
  wake(): void {
    for (const done of [...this.waiting]) done()
  }
}
