/** What a scheduler service is started with, and what push targets report with a result. */
import type { Clock } from '../core/clock.ts'
import type { EngineOptions } from '../core/engine/engine.ts'
import type { EngineEvent } from '../core/engine/events.ts'
import type { Store } from '../store/store.ts'
import type { CapabilityOptions } from './capabilities.ts'

/** Options of a {@link SchedulerService}. */
export interface SchedulerServiceOptions {
  store: Store
  /** @default the system clock */
  clock?: Clock
  /** The engine's timeouts, lease and initiator id. */
  engine?: Omit<EngineOptions, 'clock'>
  /**
   * How long a change may wait for others to share its commit. 0 commits at the end of the
   * event loop's turn: every request that arrived in that turn shares the transaction. @default 0
   */
  commitDelayMs?: number
  /** Called once when a commit fails with a fault that does not pass: the service stops taking work. */
  onFatal?: (error: unknown) => void
  /**
   * Hears the store start failing with a fault that passes (writes are refused, the batch is
   * tried again), and come back (undefined). @default written to standard error
   */
  onStoreFault?: (fault: string | undefined) => void
  /**
   * Take the store for this process alone ({@link Store.hold}) before reading it: one scheduler
   * per store. @default true
   */
  hold?: boolean
  /** Changes waiting for the store beyond which new writes are refused (503). @default 100000 */
  maxPending?: number
  /** Hears a listener's failure on an event. @default written to standard error */
  onListenerError?: (error: unknown, event: EngineEvent) => void
  /** The key and lifetime of the capabilities on assignment inputs. @default a key per process */
  capabilities?: CapabilityOptions
  /** How long one point of the stats history covers (360 are kept). @default 10000 */
  statsIntervalMs?: number
}

/** Cache changes a push target reports with an attempt's result. */
export interface CacheChanges {
  added?: readonly string[]
  removed?: readonly string[]
}
