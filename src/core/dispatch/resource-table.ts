/**
 * Unique resources (002): each is held by at most one running job at a time. A job takes every
 * resource it uses at once when it starts, so no two jobs each hold what the other waits for and
 * nothing deadlocks.
 *
 * A job that finds a resource busy is parked on the first busy one: out of every queue, so picks
 * do not keep meeting it, until that resource is freed. Then every job parked on it is handed back
 * through `unpark`; one that is busy again parks anew, on what it now finds busy.
 */
export class ResourceTable<J> {
  private readonly holders = new Map<string, J>()
  private readonly parkedOn = new Map<string, J[]>()
  private readonly unpark: (job: J) => void

  /**
   * @param unpark called for each job parked on a resource that was freed. The job may have
   * stopped waiting meanwhile (cancelled, finished elsewhere); the caller checks.
   */
  constructor(unpark: (job: J) => void) {
    this.unpark = unpark
  }

  /** The job holding `resource`, if any. */
  holder(resource: string): J | undefined {
    return this.holders.get(resource)
  }

  /** True when no resource in `uses` is held. */
  free(uses: readonly string[] | undefined): boolean {
    if (uses === undefined) return true
    for (const r of uses) if (this.holders.has(r)) return false
    return true
  }

  /** Records `job` as the holder of every resource in `uses`. */
  hold(job: J, uses: readonly string[] | undefined): void {
    if (uses !== undefined) for (const r of uses) this.holders.set(r, job)
  }

  /** Parks `job` on the first busy resource in `uses` (none busy: nothing to wait for). */
  park(job: J, uses: readonly string[]): void {
    for (const r of uses) {
      if (this.holders.has(r)) {
        let list = this.parkedOn.get(r)
        if (list === undefined) this.parkedOn.set(r, (list = []))
        list.push(job)
        return
      }
    }
  }

  /** Frees the resources `job` holds and hands back the jobs parked on them. */
  release(job: J, uses: readonly string[] | undefined): void {
    if (uses === undefined) return
    // All freed before any is handed back: a job parked on one may need the others too.
    for (const r of uses) {
      if (this.holders.get(r) === job) this.holders.delete(r)
    }
    for (const r of uses) {
      const parked = this.parkedOn.get(r)
      if (parked === undefined) continue
      // Out of the table before the first is handed back, so a job that parks again here starts
      // a new list instead of joining the one being walked.
      this.parkedOn.delete(r)
      for (const p of parked) this.unpark(p)
    }
  }
}
