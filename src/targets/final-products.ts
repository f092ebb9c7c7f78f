/**
 * Final products come home (seed 001: "the final resource is returned to the scheduling node,
 * where it will be possible to download it"). When an order succeeds, the scheduler fetches the
 * products of its last jobs from the targets that hold them into a cache of its own (the
 * initiator's) and reports them there, so the order can be downloaded after its workers are gone.
 *
 * An order's last jobs are those no lock leads out of; for an artifact, those of its last step
 * (a step before a `none` distribution leads nowhere either, but its products are not final).
 *
 * Invariants: this never counts against the order, which has already succeeded and stays so
 * whatever happens here; a failed fetch is retried a bounded number of times, then logged and
 * dropped, and never throws out of the loop; at most `concurrency` fetches run at once; a product
 * the home cache already holds is not fetched again.
 */
import type { Job, Lock } from '../core/model.ts'
import { leavesProduct, productOf } from '../core/model.ts'
import type { CacheChanges, SchedulerService } from '../service/service.ts'

/** The cache products come home to: a target in the scheduler process (the initiator). */
export interface ProductHome {
  /** The target the products are reported on. */
  readonly id: string
  holds(productId: string): boolean
  /** Fetches a product from a live holder into the cache; what the cache gained and lost. */
  fetch(productId: string): Promise<CacheChanges>
}

/** Options of {@link FinalProducts}. */
export interface FinalProductsOptions {
  /** Fetches at once, over every order. @default 4 */
  concurrency?: number
  /** Tries per product before it is given up. @default 3 */
  attempts?: number
  /** The pause before a product is tried again; doubled each time. @default 1000 */
  retryMs?: number
  /** Hears of a failure: a try that will be retried, or a product given up. @default ignored */
  onError?: (message: string) => void
  /** Hears of a product brought home and reported. @default ignored */
  onFetched?: (productId: string) => void
}

/** The jobs whose products are an order's result: no lock leads out of them, in its last step. */
export function lastJobs<J extends Pick<Job, 'id' | 'step'>>(
  jobs: readonly J[],
  locks: readonly Lock[],
): J[] {
  const leadOut = new Set(locks.map((l) => l.jobId))
  const steps = jobs.flatMap((j) => (j.step === undefined ? [] : [j.step]))
  const lastStep = steps.length === 0 ? undefined : Math.max(...steps)
  return jobs.filter((j) => !leadOut.has(j.id) && (lastStep === undefined || j.step === lastStep))
}

interface Wanted {
  productId: string
  orderId: string
  tries: number
}

export class FinalProducts {
  private readonly service: SchedulerService
  private readonly home: ProductHome
  private readonly concurrency: number
  private readonly attempts: number
  private readonly retryMs: number
  private readonly onError: (message: string) => void
  private readonly onFetched: (productId: string) => void
  private readonly queue: Wanted[] = []
  /** Products queued, fetching or waiting to retry: each is wanted once at a time. */
  private readonly wanted = new Set<string>()
  private readonly running = new Set<Promise<void>>()
  private readonly retries = new Set<NodeJS.Timeout>()
  private readonly finding = new Set<Promise<void>>()
  private off: (() => void) | undefined
  private closed = false

  constructor(service: SchedulerService, home: ProductHome, options: FinalProductsOptions = {}) {
    this.service = service
    this.home = home
    this.concurrency = options.concurrency ?? 4
    this.attempts = options.attempts ?? 3
    this.retryMs = options.retryMs ?? 1000
    this.onError = options.onError ?? (() => {})
    this.onFetched = options.onFetched ?? (() => {})
  }

  /** Listens for orders that succeed from now on. */
  start(): void {
    this.off = this.service.on((e) => {
      if (e.type === 'order:succeeded' && e.orderId !== undefined) this.bringHome(e.orderId)
    })
  }

  /** Brings an order's final products home (the server calls it for each order that succeeds). */
  bringHome(orderId: string): void {
    if (this.closed) return
    const finding = this.find(orderId)
      .catch((e: unknown) => {
        this.onError(`order ${orderId}: could not read its last jobs: ${String(e)}`)
      })
      .finally(() => this.finding.delete(finding))
    this.finding.add(finding)
  }

  /** Stops listening and retrying; waits for the fetches under way. */
  async close(): Promise<void> {
    this.closed = true
    this.off?.()
    for (const t of this.retries) clearTimeout(t)
    this.retries.clear()
    this.queue.length = 0
    await Promise.allSettled([...this.finding])
    await Promise.allSettled([...this.running])
  }

  private async find(orderId: string): Promise<void> {
    const [jobs, locks] = await Promise.all([
      this.service.jobs(orderId),
      this.service.locks(orderId),
    ])
    for (const job of lastJobs(jobs, locks)) {
      if (job.state !== 'succeeded' || !leavesProduct(job)) continue
      const productId = productOf(job)
      if (this.closed || this.wanted.has(productId) || this.home.holds(productId)) continue
      this.wanted.add(productId)
      this.queue.push({ productId, orderId, tries: 0 })
    }
    this.pump()
  }

  private pump(): void {
    while (!this.closed && this.running.size < this.concurrency && this.queue.length > 0) {
      const w = this.queue.shift()!
      const run = this.fetch(w).finally(() => {
        this.running.delete(run)
        this.pump()
      })
      this.running.add(run)
    }
  }

  private async fetch(w: Wanted): Promise<void> {
    w.tries++
    try {
      // A product fetched before a report that failed is reported, not fetched again.
      this.service.sendToFetch(this.home.id, [w.productId])
      const changes = this.home.holds(w.productId)
        ? { added: [w.productId] }
        : await this.home.fetch(w.productId)
      await this.service.reportCache(this.home.id, changes)
      this.wanted.delete(w.productId)
      this.onFetched(w.productId)
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e)
      if (this.closed) return
      if (w.tries >= this.attempts) {
        this.wanted.delete(w.productId)
        this.onError(
          `order ${w.orderId}: gave up bringing product ${w.productId} home after ${w.tries} tries: ${why}`,
        )
        return
      }
      this.onError(`order ${w.orderId}: product ${w.productId} not brought home yet: ${why}`)
      const timer = setTimeout(
        () => {
          this.retries.delete(timer)
          this.queue.push(w)
          this.pump()
        },
        this.retryMs * 2 ** (w.tries - 1),
      )
      timer.unref()
      this.retries.add(timer)
    }
  }
}
