/**
 * Time, injected. The core reads the time and sets timers only through a {@link Clock}, so tests
 * drive it with a {@link FakeClock} and the service with the system clock.
 */

/** A cancellable timer. */
export interface Timer {
  cancel(): void
  /** Lets the process exit while the timer waits (the system clock's timers; a no-op elsewhere). */
  unref?(): void
}

/** The source of time for everything in the core. */
export interface Clock {
  /** Unix milliseconds. */
  now(): number
  /** Calls `fn` once, `ms` milliseconds from now. */
  setTimeout(fn: () => void, ms: number): Timer
}

/**
 * The real clock. This is the one place in the core that touches the host's time; everything
 * else receives it as a {@link Clock}.
 */
export const systemClock: Clock = {
  // eslint-disable-next-line no-restricted-properties -- the system clock is the seam itself
  now: () => Date.now(),
  setTimeout(fn, ms) {
    // eslint-disable-next-line no-restricted-globals -- the system clock is the seam itself
    const handle = setTimeout(fn, ms)
    return {
      cancel: () => clearTimeout(handle),
      unref: () => void handle.unref(),
    }
  },
}

interface FakeTimer {
  due: number
  seq: number
  fn: () => void
  cancelled: boolean
}

/**
 * A clock that moves only when a test calls {@link FakeClock.advance}. Timers fire in the order
 * of their due times (then of their creation), each with `now()` at its due time, including
 * timers that earlier timers set within the advanced span.
 */
export class FakeClock implements Clock {
  private time: number
  private seq = 0
  private timers: FakeTimer[] = []

  constructor(startMs = 1_700_000_000_000) {
    this.time = startMs
  }

  now(): number {
    return this.time
  }

  setTimeout(fn: () => void, ms: number): Timer {
    const timer: FakeTimer = {
      due: this.time + Math.max(0, ms),
      seq: this.seq++,
      fn,
      cancelled: false,
    }
    this.timers.push(timer)
    return {
      cancel: () => {
        timer.cancelled = true
      },
    }
  }

  /** Moves time forward by `ms`, firing every timer that falls due on the way. */
  advance(ms: number): void {
    const end = this.time + ms
    for (;;) {
      this.timers = this.timers.filter((t) => !t.cancelled)
      let next: FakeTimer | undefined
      for (const t of this.timers) {
        if (
          t.due <= end &&
          (next === undefined || t.due < next.due || (t.due === next.due && t.seq < next.seq))
        ) {
          next = t
        }
      }
      if (next === undefined) break
      this.time = Math.max(this.time, next.due)
      next.cancelled = true
      next.fn()
    }
    this.time = end
  }

  /** Timers set and not yet fired or cancelled. */
  pendingTimers(): number {
    return this.timers.filter((t) => !t.cancelled).length
  }
}
