/**
 * The initiator's driver: the built-in target inside the scheduler process that runs an
 * artifact's initiator jobs (initialization, aggregation, the ends of a sequential chain). It runs
 * them as a worker does, with its own product cache under the data directory, and serves its
 * products to workers through the API. It takes only the jobs strict to it.
 *
 * It runs builtins only unless the operator opts in (`exec`): an `exec` job here would run user
 * code inside the scheduler, next to its store and its tokens. The engine is told the same
 * (`EngineOptions.initiatorRuns`, from {@link initiatorRuns}), so such a job waits with a reason
 * and never reaches this driver; if one did, it refuses it.
 */
import { mkdir } from 'node:fs/promises'
import type { ServerResponse } from 'node:http'
import { join } from 'node:path'
import { operationKind } from '../core/model.ts'
import type { OperationKind } from '../core/model.ts'
import type { Assignment, Stop } from '../core/protocol.ts'
import { execute, fetchInput } from '../runner/execute.ts'
import type { ExecuteOptions } from '../runner/execute.ts'
import { ProductCache, sendProduct } from '../runner/products.ts'
import type { RunningJob } from '../runner/run-job.ts'
import type { CacheChanges, SchedulerService } from '../service/service.ts'
import type { AttemptOutcome, ProductSource, TargetDriver } from './target-driver.ts'

/** Options of an {@link InitiatorDriver}. */
export interface InitiatorOptions {
  /** Where its product cache and job directories live. */
  dir: string
  /** The worker token it fetches inputs from workers with. */
  token?: string | undefined
  /** How many initiator jobs run at once. @default 64 */
  slots?: number
  /** The largest product cache it keeps, in bytes. @default 1 GiB */
  cacheBytes?: number
  /**
   * Runs `exec` jobs too: user code in the scheduler process, with the scheduler's access to its
   * store and its files (never its environment). `lockstep server --initiator-exec`.
   * @default false
   */
  exec?: boolean
}

/** The operation kinds an initiator with these options runs: what the engine must be told. */
export function initiatorRuns(options: Pick<InitiatorOptions, 'exec'>): OperationKind[] {
  return options.exec === true ? ['builtin', 'exec'] : ['builtin']
}

export class InitiatorDriver implements TargetDriver, ProductSource {
  readonly id: string
  readonly registration = undefined
  /** The worker token it fetches products from workers with. */
  readonly token: string | undefined
  private readonly service: SchedulerService
  private readonly dir: string
  private readonly slots: number
  private readonly cache: ProductCache
  private readonly runs: readonly OperationKind[]
  /** Attempts running now, by `jobId#attempt`; a job appears once it runs. */
  private readonly running = new Map<string, RunningJob | undefined>()

  constructor(service: SchedulerService, options: InitiatorOptions) {
    this.service = service
    this.id = service.initiator
    this.dir = options.dir
    this.token = options.token
    this.slots = options.slots ?? 64
    this.cache = new ProductCache(options.dir, options.cacheBytes ?? 1024 ** 3)
    this.runs = initiatorRuns(options)
  }

  async open(): Promise<void> {
    await this.cache.open()
    await mkdir(join(this.dir, 'jobs'), { recursive: true })
  }

  availability(): number {
    return this.slots - this.running.size
  }

  async start(a: Assignment): Promise<AttemptOutcome> {
    const kind = operationKind(a.op)
    if (!this.runs.includes(kind)) {
      // The engine keeps such jobs waiting; reaching here means it was told otherwise.
      return {
        result: {
          ok: false,
          reason: 'refused',
          message: `the initiator runs ${this.runs.join(' and ')} jobs only, not ${kind}; start the server with --initiator-exec`,
        },
      }
    }
    const key = `${a.jobId}#${a.attempt}`
    this.running.set(key, undefined)
    try {
      return await execute(a, {
        ...this.runOptions(),
        started: (job) => {
          if (this.running.has(key)) this.running.set(key, job)
        },
      })
    } catch (e) {
      return { result: { ok: false, reason: 'error', message: String(e) } }
    } finally {
      this.running.delete(key)
    }
  }

  /**
   * Brings a product another target holds into this cache, fetched as an input is; answers what
   * the cache gained and evicted, for the caller to report through the service.
   */
  fetch(productId: string): Promise<CacheChanges> {
    // A peer serves it to the capability the scheduler signs for this fetch, as for any input.
    return fetchInput(
      productId,
      this.service.capability(productId, this.id),
      this.runOptions(),
      this.service.productHash(productId),
    )
  }

  /** How its attempts run and fetch: builtins with no data, its own cache and job directories. */
  private runOptions(): ExecuteOptions {
    return {
      cache: this.cache,
      jobsDir: join(this.dir, 'jobs'),
      self: this.id,
      token: this.token,
      data: {},
      initiator: true,
      secrets: join(this.dir, 'secrets'),
      locate: (id) => Promise.resolve(this.service.holders(id)),
    }
  }

  stop(stop: Stop): void {
    this.running.get(`${stop.jobId}#${stop.attempt}`)?.cancel(stop.reason)
  }

  /** Cancels what runs; the push loop waits for the outcomes. */
  close(): Promise<void> {
    for (const job of this.running.values()) job?.cancel('the scheduler is stopping')
    return Promise.resolve()
  }

  holds(productId: string): boolean {
    return this.cache.has(productId)
  }

  send(productId: string, res: ServerResponse): Promise<void> {
    return sendProduct(this.cache, productId, undefined, undefined, res)
  }
}
