/**
 * Group commit: the service's durability. Changes are recorded as they happen; one commit takes
 * everything recorded so far as a single batch, and calls that arrive while a commit is in flight
 * (or within `commitDelayMs`) share the next one.
 *
 * Invariants: a caller of `durable()` is released only after a commit that holds every change
 * recorded before the call; commits never overlap, so batches reach the store in order; after a
 * failed commit nothing more is committed and every caller, waiting or new, gets UNAVAILABLE: the
 * engine is ahead of its store, and only a restart from the store is safe.
 */
import { LockstepError } from '../core/errors.ts'
import type { Batch, Store } from '../store/store.ts'

/** What a {@link GroupCommit} commits, and whom it tells. */
export interface GroupCommitOptions {
  store: Store
  /** Whether anything is recorded and not yet taken. */
  pending(): boolean
  /** Takes everything recorded so far as the next batch. */
  take(): Batch
  /** Called after a batch is stored, before the callers waiting on it are released. */
  committed(batch: Batch): void
  /** Called once, when a commit fails. */
  failed(error: unknown): void
  /**
   * How long a change may wait for others to share its commit. 0 commits at the end of the
   * event loop's turn: every request that arrived in that turn shares the transaction. @default 0
   */
  commitDelayMs?: number
}

export class GroupCommit {
  private readonly options: GroupCommitOptions
  private readonly delayMs: number
  private waiters: { resolve: () => void; reject: (e: unknown) => void }[] = []
  private inflight: Promise<void> | undefined
  private flushTimer: { cancel(): void } | undefined
  private failure: unknown = undefined
  private closed = false

  constructor(options: GroupCommitOptions) {
    this.options = options
    this.delayMs = options.commitDelayMs ?? 0
  }

  /** Whether the service may take no more work: closed, or stopped by a failed commit. */
  get stopped(): boolean {
    return this.closed || this.failure !== undefined
  }

  /** Throws UNAVAILABLE once the service takes no more work. */
  check(): void {
    if (this.stopped) throw this.unavailable()
  }

  /** Something was recorded: a commit follows. */
  changed(): void {
    if (this.flushTimer !== undefined || this.inflight !== undefined || this.closed) return
    const run = () => {
      this.flushTimer = undefined
      void this.flush()
    }
    if (this.delayMs === 0) {
      const handle = setImmediate(run)
      this.flushTimer = { cancel: () => clearImmediate(handle) }
    } else {
      const handle = setTimeout(run, this.delayMs)
      this.flushTimer = { cancel: () => clearTimeout(handle) }
    }
  }

  /** Resolves once everything recorded so far is stored. */
  durable(): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.unavailable())
    if (!this.options.pending()) return this.inflight ?? Promise.resolve()
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }))
  }

  /**
   * Makes one change and answers once it is stored: the shape of every write the service
   * offers. A change that throws has changed nothing, and its error reaches the caller.
   */
  async apply<T>(change: () => T): Promise<T> {
    this.check()
    const out = change()
    await this.durable()
    return out
  }

  /** Takes no more work; what is already recorded is still committed by {@link close}. */
  closing(): void {
    this.closed = true
  }

  /** Commits what is pending and stops. */
  async close(): Promise<void> {
    this.closed = true
    if (this.failure !== undefined) return
    this.flushTimer?.cancel()
    this.flushTimer = undefined
    await this.inflight?.catch(() => {})
    if (this.options.pending()) await this.flush()
  }

  private unavailable(): LockstepError {
    return new LockstepError(
      'UNAVAILABLE',
      this.failure !== undefined
        ? `the scheduler stopped after a failed commit: ${this.failure instanceof Error ? this.failure.message : 'unknown error'}`
        : 'the scheduler is closed',
    )
  }

  private async flush(): Promise<void> {
    if (this.inflight !== undefined || !this.options.pending() || this.failure !== undefined) return
    const batch = this.options.take()
    const waiters = this.waiters
    this.waiters = []
    const commit = this.options.store.commit(batch)
    this.inflight = commit
    try {
      await commit
    } catch (error) {
      this.failure = error
      for (const w of [...waiters, ...this.waiters.splice(0)]) w.reject(this.unavailable())
      this.options.failed(error)
      return
    } finally {
      this.inflight = undefined
    }
    this.options.committed(batch)
    for (const w of waiters) w.resolve()
    if (this.options.pending()) this.changed()
  }
}
