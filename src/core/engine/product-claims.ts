/**
 * Claims on products (cache keys): one job makes a product, and the ready jobs with the same
 * cache key wait for it. When it succeeds they take its product; when it fails or is cancelled,
 * the first of them takes its place.
 *
 * Invariant: the dispatch core holds at most one job per product id, the leader; a follower
 * enters it only by becoming the leader.
 */
import type { Id } from '../ids.ts'
import type { JobState } from '../model.ts'

/** What a claim needs to know of a job. */
export interface Claimant {
  /** The product it makes; also its id in the dispatch core. */
  readonly productId: string
  readonly job: { readonly id: Id; readonly attempt: number; readonly state: JobState }
}

/** The leader and the followers of every product a ready or running job makes. */
export class ProductClaims<J extends Claimant> {
  /**
   * The job in the dispatch core for each product id (ready, running or backing off), and the
   * jobs with the same cache key that wait for it.
   */
  private readonly leaders = new Map<string, J>()
  private readonly followers = new Map<string, J[]>()
  private readonly schedule: (job: J) => void
  private readonly locate: (productId: string) => string | undefined

  /**
   * `schedule` puts a leader into the dispatch core; `locate` names a live target holding a
   * product, if any.
   */
  constructor(schedule: (job: J) => void, locate: (productId: string) => string | undefined) {
    this.schedule = schedule
    this.locate = locate
  }

  /**
   * Where a job that is ready for the first time can take its product from instead of running:
   * a live target already holds what another job with its cache key made.
   */
  cached(job: J): string | undefined {
    if (job.productId === job.job.id || job.job.attempt !== 0) return undefined
    return this.locate(job.productId)
  }

  /**
   * Makes a ready job the maker of its product, scheduling it, or, when another job with its
   * cache key already makes it, a follower of that one.
   */
  claim(job: J): void {
    const product = job.productId
    const leader = this.leaders.get(product)
    if (leader !== undefined && leader !== job) {
      let list = this.followers.get(product)
      if (list === undefined) this.followers.set(product, (list = []))
      list.push(job)
      return
    }
    this.leaders.set(product, job)
    this.schedule(job)
  }

  /** Makes a job already running (restored so) the maker of its product, without scheduling. */
  lead(job: J): void {
    this.leaders.set(job.productId, job)
  }

  /** The job making a product. */
  leader(productId: string): J | undefined {
    return this.leaders.get(productId)
  }

  /**
   * The maker of a product has ended: with the product (`holder`), the ready jobs waiting for it
   * are returned to take it from there; without, the first of them claims it in its place.
   */
  stepDown(job: J, holder: string | undefined): J[] {
    const product = job.productId
    if (this.leaders.get(product) !== job) return NONE
    this.leaders.delete(product)
    const waiting = this.followers.get(product)
    if (waiting === undefined) return NONE
    this.followers.delete(product)
    const live = waiting.filter((f) => f.job.state === 'ready')
    if (holder !== undefined) return live
    const next = live.shift()
    if (next === undefined) return NONE
    if (live.length > 0) this.followers.set(product, live)
    this.claim(next)
    return NONE
  }
}

const NONE: never[] = []
