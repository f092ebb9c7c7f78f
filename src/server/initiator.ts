/**
 * The initiator: the built-in target inside the scheduler process that runs initiator jobs
 * (initialization, aggregation, the ends of a sequential chain). It runs them as a worker does,
 * with its own product cache under the data directory, and serves its products to workers.
 */
import { mkdir } from 'node:fs/promises'
import type { ServerResponse } from 'node:http'
import { join } from 'node:path'
import type { Assignment } from '../core/protocol.ts'
import type { JobResult } from '../core/model.ts'
import { execute } from '../runner/execute.ts'
import { ProductCache, sendProduct } from '../runner/products.ts'
import type { SchedulerService } from '../service/service.ts'

export class Initiator {
  private readonly cache: ProductCache
  private readonly dir: string
  /** The worker token it fetches products from workers with. */
  readonly token: string | undefined
  private service: SchedulerService | undefined
  private readonly attached: Promise<SchedulerService>
  private resolveAttached: (s: SchedulerService) => void = () => {}

  /** `token`: the worker token to fetch inputs from workers with. */
  constructor(dir: string, token: string | undefined) {
    this.dir = dir
    this.token = token
    this.cache = new ProductCache(dir, 1024 ** 3)
    this.attached = new Promise((resolve) => (this.resolveAttached = resolve))
  }

  async open(): Promise<void> {
    await this.cache.open()
    await mkdir(join(this.dir, 'jobs'), { recursive: true })
  }

  /** Binds the runner to its service; jobs wait for it. */
  attach(service: SchedulerService): void {
    this.service = service
    this.resolveAttached(service)
  }

  /** Runs one initiator job; what the service calls. */
  readonly run = async (a: Assignment): Promise<JobResult> => {
    const service = await this.attached
    const engine = service.engine
    const done = await execute(a, {
      cache: this.cache,
      jobsDir: join(this.dir, 'jobs'),
      self: engine.initiator,
      token: this.token,
      data: {},
      initiator: true,
      secrets: join(this.dir, 'secrets'),
      locate: (id) =>
        Promise.resolve(
          engine.holders(id).map((target) => ({ target, url: engine.target(target)?.url })),
        ),
    })
    if (done.added.length > 0 || done.removed.length > 0) {
      engine.reportCache(engine.initiator, done.added, done.removed)
    }
    return done.result
  }

  holds(id: string): boolean {
    return this.cache.has(id)
  }

  /** Serves one of its products; the API has checked the caller's token. */
  serve(id: string, res: ServerResponse): Promise<void> {
    return sendProduct(this.cache, id, undefined, undefined, res)
  }
}
