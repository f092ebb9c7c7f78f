/**
 * What the engine knows of products beyond where they are (the dispatch core keeps that): the
 * content hash each was made with, and the inputs each target was sent to fetch. With it the
 * engine decides which announcements of a target's cache to believe.
 *
 * Invariants: a target is taken to hold a product only when its attempt made it, when the store
 * already says it holds it, or when it was sent to fetch it as an input of an attempt assigned to
 * it and the product's hash is known (its agent checked its copy against that hash). A cache key
 * is satisfied only by a product whose hash is known.
 */

/** Why an announcement was not believed. */
export type AnnouncementRefusal = 'registration' | 'heartbeat'

export class ProductLedger {
  /** The content hash of every product made with one, by product id. */
  private readonly hashes = new Map<string, string>()
  /**
   * Per target, the inputs it was sent to fetch and has not announced yet. A grant outlives its
   * attempt: the agent announces what it fetched on the heartbeat that carries the result, which
   * the engine reads after the result. Dropped with the target.
   */
  private readonly grants = new Map<string, Set<string>>()
  /** Announced products that were not believed, since the engine started. */
  refused = 0

  /** The content hash of a product, if its maker reported one. */
  hash(productId: string): string | undefined {
    return this.hashes.get(productId)
  }

  /**
   * A product was made (again): its hash is the new one's. Made without a hash, it has none:
   * an older copy's hash would not describe what its maker now serves.
   */
  made(productId: string, hash: string | undefined): void {
    if (hash === undefined) this.hashes.delete(productId)
    else this.hashes.set(productId, hash)
  }

  /** Hashes as the store kept them. */
  restore(products: readonly { productId: string; hash?: string | undefined }[]): void {
    for (const p of products) if (p.hash !== undefined) this.hashes.set(p.productId, p.hash)
  }

  /**
   * A target is sent to fetch these inputs. Only those with a known hash are granted: a copy of
   * any other cannot have been checked.
   */
  grant(targetId: string, productIds: readonly string[], holds: (id: string) => boolean): void {
    for (const id of productIds) {
      if (!this.hashes.has(id) || holds(id)) continue
      let set = this.grants.get(targetId)
      if (set === undefined) this.grants.set(targetId, (set = new Set()))
      set.add(id)
    }
  }

  /** True, once, if the target was sent to fetch the product. */
  takeGrant(targetId: string, productId: string): boolean {
    const set = this.grants.get(targetId)
    if (set === undefined || !set.delete(productId)) return false
    if (set.size === 0) this.grants.delete(targetId)
    return true
  }

  /** A target left or was lost: what it was sent to fetch no longer counts. */
  dropTarget(targetId: string): void {
    this.grants.delete(targetId)
  }
}
