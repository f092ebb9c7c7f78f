/**
 * What targets say of their caches, and what the engine believes of it: the one place an
 * announcement is taken or refused, at registration and in every report after it.
 *
 * Invariants (with {@link ProductLedger}): a target is taken to hold a product only when its
 * attempt made it, when the store already says it holds it, when it was sent to fetch it and
 * the product's hash is known, or when it held it before it was lost, registers again with it,
 * and the product's hash is known. Anything else is ignored, counted and recorded as
 * `cache:refused`, never an error: the rest of a heartbeat or a registration stands.
 */
import type { Scheduler } from '../dispatch/scheduler.ts'
import type { EngineEvents } from './events.ts'
import type { AnnouncementRefusal, ProductLedger } from './product-ledger.ts'

export class CacheReports {
  private readonly ledger: ProductLedger
  private readonly dispatch: Scheduler
  private readonly events: EngineEvents
  /**
   * What each target that was lost or left held then, until it registers again. In memory only:
   * the store forgets a lost target's cache, so after a restart of the scheduler it is refused.
   */
  private readonly dormant = new Map<string, Set<string>>()

  constructor(ledger: ProductLedger, dispatch: Scheduler, events: EngineEvents) {
    this.ledger = ledger
    this.dispatch = dispatch
    this.events = events
  }

  /**
   * A target registers with products in its cache: what the store says it holds counts, and so
   * does what it held when it was lost or left, if the product's hash is known (every consumer
   * checks its copy against that hash). A worker restarted on its cache keeps its products; any
   * other announcement is refused, and what it held before and does not announce is gone.
   */
  registered(targetId: string, cached: readonly string[]): void {
    const before = this.dormant.get(targetId)
    this.dormant.delete(targetId)
    const back: string[] = []
    const refused: string[] = []
    for (const id of cached) {
      if (this.holds(targetId, id)) continue
      if (before?.has(id) === true && this.ledger.hash(id) !== undefined) back.push(id)
      else refused.push(id)
    }
    this.refuse(targetId, refused, 'registration')
    if (back.length === 0) return
    for (const id of back) this.dispatch.addCached(targetId, id)
    this.events.emit('cache:changed', { targetId, added: back, removed: [] })
  }

  /** A target was lost or left, holding these products: they count again if it comes back with them. */
  gone(targetId: string, held: readonly string[]): void {
    if (held.length > 0) this.dormant.set(targetId, new Set(held))
  }

  /** A target is forgotten for good: nothing it held counts any more. */
  forgotten(targetId: string): void {
    this.dormant.delete(targetId)
  }

  /** Products a target gained or lost from its cache. */
  reported(targetId: string, added: readonly string[], removed: readonly string[]): void {
    if (added.length === 0 && removed.length === 0) return
    const believed: string[] = []
    const refused: string[] = []
    for (const id of added) {
      if (this.holds(targetId, id)) continue
      if (this.ledger.takeGrant(targetId, id)) believed.push(id)
      else refused.push(id)
    }
    this.refuse(targetId, refused, 'heartbeat')
    if (believed.length === 0 && removed.length === 0) return
    for (const id of believed) this.dispatch.addCached(targetId, id)
    for (const id of removed) this.dispatch.removeCached(targetId, id)
    this.events.emit('cache:changed', { targetId, added: believed, removed: [...removed] })
  }

  /** A target is sent to fetch products: its report of them will be believed. */
  sendToFetch(targetId: string, productIds: readonly string[]): void {
    this.ledger.grant(targetId, productIds, (id) => this.holds(targetId, id))
  }

  private holds(targetId: string, productId: string): boolean {
    return this.dispatch.holders(productId).includes(targetId)
  }

  private refuse(targetId: string, productIds: string[], during: AnnouncementRefusal): void {
    if (productIds.length === 0) return
    this.ledger.refused += productIds.length
    this.events.emit('cache:refused', { targetId, productIds, during })
  }
}
