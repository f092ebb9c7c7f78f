/**
 * Picks waiting for work: a `pickJob` that found nothing waits here until a job it may run
 * arrives, its signal aborts, its target is removed or the scheduler stops. Every waiting pick is
 * answered exactly once (with a job or with null) and leaves no abort listener behind.
 *
 * A target's picks are answered oldest first. The targets with waiting picks are kept in the order
 * they began to wait, so a job any of them may take goes to the one idle longest.
 */

/** One waiting `pickJob`. */
export interface PickRequest<R> {
  resolve: (answer: R | null) => void
  signal: AbortSignal | undefined
  onAbort: (() => void) | undefined
}

/**
 * A target as the waiting picks see it. The requests live on the target itself, so asking whether
 * a target has picks waiting, which happens whenever a job enters one of its queues, costs no
 * lookup; only {@link WaitingPicks} changes the list.
 */
export interface Picker<R> {
  readonly picks: PickRequest<R>[]
}

export class WaitingPicks<T extends Picker<R>, R> {
  /** Targets with waiting picks, oldest first; exactly those whose `picks` is not empty. */
  private readonly waiting = new Set<T>()

  /** The targets with waiting picks, in the order they began to wait. */
  get idle(): ReadonlySet<T> {
    return this.waiting
  }

  /** True when `t` has picks waiting. */
  has(t: T): boolean {
    return t.picks.length > 0
  }

  /** A pick on `t` that waits for {@link answer}; null once `signal` aborts. */
  wait(t: T, signal: AbortSignal | undefined): Promise<R | null> {
    return new Promise((resolve) => {
      const request: PickRequest<R> = { resolve, signal, onAbort: undefined }
      if (signal !== undefined) {
        request.onAbort = () => {
          const i = t.picks.indexOf(request)
          if (i >= 0) t.picks.splice(i, 1)
          if (t.picks.length === 0) this.waiting.delete(t)
          resolve(null)
        }
        signal.addEventListener('abort', request.onAbort, { once: true })
      }
      t.picks.push(request)
      this.waiting.add(t)
    })
  }

  /** Answers `t`'s oldest waiting pick with `answer`; `t` must have one. */
  answer(t: T, answer: R): void {
    settle(t.picks.shift()!, answer)
    if (t.picks.length === 0) this.waiting.delete(t)
  }

  /** Answers every pick waiting on `t` with null. */
  cancel(t: T): void {
    for (const request of t.picks.splice(0)) settle(request, null)
    this.waiting.delete(t)
  }

  /** Answers every waiting pick with null. */
  cancelAll(): void {
    for (const t of this.waiting) for (const request of t.picks.splice(0)) settle(request, null)
    this.waiting.clear()
  }
}

function settle<R>(request: PickRequest<R>, answer: R | null): void {
  if (request.onAbort !== undefined) request.signal?.removeEventListener('abort', request.onAbort)
  request.resolve(answer)
}
