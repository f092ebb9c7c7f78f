/**
 * Group commit: the service's durability. Changes are recorded as they happen; one commit takes
 * everything recorded so far as a single batch, and calls that arrive while a commit is in flight
 * (or within `commitDelayMs`) share the next one.
 *
 * Invariants:
 * - a caller of `durable()` is released only after a commit that holds every change recorded
 *   before the call; commits never overlap, so batches reach the store in order;
 * - a batch that fails with a transient fault (see `store/faults.ts`) is kept, whole, and tried
 *   again with backoff until it lands; nothing recorded after it is committed, and no caller is
 *   released, before it has. Its callers are answered STORE_UNAVAILABLE at once: their change
 *   is not acknowledged, though it lands when the database returns. So the engine is ahead of
 *   the store only by changes nobody was told are stored, and they reach the store in order;
 * - while the store is failing, and while more than `maxPending` changes wait, new writes are
 *   refused with STORE_UNAVAILABLE and a Retry-After: what waits in memory is bounded;
 * - a fault that does not pass stops the service for good: every caller, waiting or new, gets
 *   UNAVAILABLE, and only a restart from the store is safe.
 */
import { randomUUID } from 'node:crypto'
import { LockstepError } from '../core/errors.ts'
import { describeFault, isTransient, storeUnavailable } from '../store/faults.ts'
import { emptyBatch } from '../store/store.ts'
import type { Batch, Store } from '../store/store.ts'

/** What a {@link GroupCommit} commits, and whom it tells. */
export interface GroupCommitOptions {
  store: Store
  /** How many changes are recorded and not yet taken (0: nothing to commit). */
  pending(): number
  /** Takes everything recorded so far as the next batch. */
  take(): Batch
  /** Called after a batch is stored, before the callers waiting on it are released. */
  committed(batch: Batch): void
  /** Called once, when a commit fails with a fault that does not pass. */
  failed(error: unknown): void
  /** Told how long each commit that landed took, in ms: the store's transaction alone. */
  measured?(ms: number): void
  /** Called when the store starts failing (with the fault) and when it is back (undefined). */
  faulted?(fault: unknown): void
  /**
   * How long a change may wait for others to share its commit. 0 commits at the end of the
   * event loop's turn: every request that arrived in that turn shares the transaction. @default 0
   */
  commitDelayMs?: number
  /** Changes waiting for their commit beyond which new writes are refused. @default 100000 */
  maxPending?: number
  /** The first wait before a failed batch is tried again; it doubles each time. @default 250 */
  retryMinMs?: number
  /** The longest wait between two tries. @default 5000 */
  retryMaxMs?: number
}

/** Where the store stands, for readiness and metrics. */
export interface StoreStatus {
  /** False while the store is failing: writes are refused until a commit lands. */
  ready: boolean
  /** The fault, in words, while failing. */
  fault?: string
  /** Changes recorded and not yet stored, the kept batch's included. */
  pending: number
  /** Seconds until the next try, while failing. */
  retryAfterS?: number
}

/** The default hearer of store faults: a line on standard error when it fails and when it is back. */
export function logStoreFault(fault: string | undefined): void {
  process.stderr.write(
    fault === undefined
      ? 'lockstep: the database is back; writes are taken again\n'
      : `lockstep: the database is failing (${fault}); writes get 503 until it returns\n`,
  )
}

export class GroupCommit {
  private readonly options: GroupCommitOptions
  private readonly delayMs: number
  private readonly maxPending: number
  private waiters: { resolve: () => void; reject: (e: unknown) => void }[] = []
  private inflight: Promise<void> | undefined
  private flushTimer: { cancel(): void } | undefined
  private failure: unknown = undefined
  private closed = false
  /** The transient fault the store is in, while it lasts. */
  private fault: unknown = undefined
  /** The batch that failed with it, tried again until it lands. */
  private kept: Batch | undefined
  private retryTimer: NodeJS.Timeout | undefined
  private retryDelayMs: number
  private nextTryAt = 0

  constructor(options: GroupCommitOptions) {
    this.options = options
    this.delayMs = options.commitDelayMs ?? 0
    this.maxPending = options.maxPending ?? 100_000
    this.retryDelayMs = options.retryMinMs ?? 250
  }

  /** Whether the service may take no more work: closed, or stopped by a failed commit. */
  get stopped(): boolean {
    return this.closed || this.failure !== undefined
  }

  /** Where the store stands. */
  get status(): StoreStatus {
    const pending = this.options.pending() + (this.kept?.events.length ?? 0)
    if (this.fault === undefined) return { ready: true, pending }
    return {
      ready: false,
      fault: describeFault(this.fault),
      pending,
      retryAfterS: this.retryAfterS,
    }
  }

  /**
   * Throws UNAVAILABLE once the service takes no more work, and STORE_UNAVAILABLE while the store
   * is failing or too many changes wait for it.
   */
  check(): void {
    if (this.stopped) throw this.unavailable()
    if (this.fault !== undefined) throw storeUnavailable(this.fault, this.retryAfterS)
    const pending = this.options.pending()
    if (pending >= this.maxPending) {
      throw storeUnavailable(
        new Error(
          `${pending} changes wait for the database, more than the ${this.maxPending} allowed`,
        ),
      )
    }
  }

  /** Something was recorded: a commit follows. */
  changed(): void {
    if (this.flushTimer !== undefined || this.inflight !== undefined || this.closed) return
    if (this.fault !== undefined) return // the retry takes it
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
    if (this.fault !== undefined) {
      return Promise.reject(storeUnavailable(this.fault, this.retryAfterS))
    }
    if (this.options.pending() === 0) {
      // Everything is in the batch in flight: its outcome, in the words a caller gets.
      return (this.inflight ?? Promise.resolve()).catch((error: unknown) => {
        throw this.failure === undefined
          ? storeUnavailable(this.fault ?? error, this.retryAfterS)
          : this.unavailable()
      })
    }
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

  /**
   * The store reports a fault outside a commit (the session holding it dropped): writes are
   * refused, and the next try, with what is pending or an empty batch, takes the store again.
   */
  storeFault(error: unknown): void {
    if (this.stopped || this.fault !== undefined) return
    this.enterFault(error)
    if (this.inflight === undefined) this.scheduleRetry()
  }

  /** Takes no more work; what is already recorded is still committed by {@link close}. */
  closing(): void {
    this.closed = true
    clearTimeout(this.retryTimer)
    this.retryTimer = undefined
  }

  /** Commits what is pending and stops; a store still failing keeps what it could not take. */
  async close(): Promise<void> {
    this.closing()
    if (this.failure !== undefined) return
    this.flushTimer?.cancel()
    this.flushTimer = undefined
    await this.inflight?.catch(() => {})
    if (this.kept !== undefined) await this.retry()
    if (this.fault === undefined && this.options.pending() > 0) await this.flush()
    for (const w of this.waiters.splice(0)) w.reject(this.unavailable())
  }

  private get retryAfterS(): number {
    return Math.max(1, Math.ceil((this.nextTryAt - Date.now()) / 1000))
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
    if (this.inflight !== undefined || this.options.pending() === 0) return
    if (this.failure !== undefined || this.fault !== undefined) return
    const batch = this.options.take()
    batch.token = randomUUID()
    const waiters = this.waiters
    this.waiters = []
    const error = await this.write(batch)
    if (error !== undefined) {
      const e =
        this.failure === undefined ? storeUnavailable(error, this.retryAfterS) : this.unavailable()
      for (const w of [...waiters, ...this.waiters.splice(0)]) w.reject(e)
      return
    }
    for (const w of waiters) w.resolve()
    if (this.options.pending() > 0) this.changed()
  }

  /**
   * Tries the kept batch once more; with none (the store reported its fault itself), commits
   * what is pending, or an empty batch that only takes the store again, and releases the callers
   * waiting for it.
   */
  private async retry(): Promise<void> {
    this.retryTimer = undefined
    if (this.inflight !== undefined || this.failure !== undefined) return
    let batch = this.kept
    let waiters: typeof this.waiters = []
    if (batch === undefined) {
      batch = this.options.pending() > 0 ? this.options.take() : emptyBatch()
      batch.token = randomUUID()
      waiters = this.waiters.splice(0)
    }
    batch.retried = true
    const error = await this.write(batch)
    if (error === undefined) {
      for (const w of waiters) w.resolve()
      // The store is back: what waited is committed in order, as new writes are.
      if (this.options.pending() > 0) this.changed()
      return
    }
    const e =
      this.failure === undefined ? storeUnavailable(error, this.retryAfterS) : this.unavailable()
    for (const w of [...waiters, ...this.waiters.splice(0)]) w.reject(e)
  }

  /** Commits one batch; answers the error, after recording the fault or the failure it is. */
  private async write(batch: Batch): Promise<unknown> {
    const began = performance.now()
    const commit = this.options.store.commit(batch)
    this.inflight = commit
    try {
      await commit
    } catch (error) {
      if (isTransient(error) && this.failure === undefined) {
        this.kept = batch
        this.enterFault(error)
        if (!this.closed) this.scheduleRetry()
      } else {
        this.failure = error
        this.kept = undefined
        this.options.failed(error)
      }
      return error
    } finally {
      this.inflight = undefined
    }
    this.kept = undefined
    this.options.measured?.(performance.now() - began)
    if (this.fault !== undefined) {
      this.fault = undefined
      this.retryDelayMs = this.options.retryMinMs ?? 250
      this.options.faulted?.(undefined)
    }
    this.options.committed(batch)
    return undefined
  }

  private enterFault(error: unknown): void {
    const first = this.fault === undefined
    this.fault = error
    if (first) this.options.faulted?.(error)
  }

  private scheduleRetry(): void {
    if (this.retryTimer !== undefined || this.closed) return
    const delay = this.retryDelayMs
    this.retryDelayMs = Math.min(delay * 2, this.options.retryMaxMs ?? 5000)
    this.nextTryAt = Date.now() + delay
    this.retryTimer = setTimeout(() => void this.retry(), delay)
  }
}
