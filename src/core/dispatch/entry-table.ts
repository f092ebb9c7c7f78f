/**
 * The scheduler's index by id: for each product, the targets that hold it (what `locateArtifact`
 * answers) and the waiting jobs that read it; for each job, its pending record. One map lookup per
 * id serves them all (see {@link Entry}).
 *
 * An entry lives only while it says something (a pending job, a holder or a waiter), so the table
 * stays the size of the cluster's caches and queues, not of every id ever seen.
 */
import type { DispatchJob, TargetQueues } from './dispatch-state.ts'
import { Entry, WAITING } from './dispatch-state.ts'

export class EntryTable {
  private readonly entries = new Map<string, Entry>()

  get(id: string): Entry | undefined {
    return this.entries.get(id)
  }

  /** The entry under `id`, made if there is none. */
  entry(id: string): Entry {
    let entry = this.entries.get(id)
    if (entry === undefined) {
      entry = new Entry(id)
      this.entries.set(id, entry)
    }
    return entry
  }

  /** Forgets an entry that no longer says anything: no job, no holder, no waiter. */
  collect(entry: Entry): void {
    if (entry.pending === undefined && entry.holders === undefined && entry.waiters === undefined) {
      this.entries.delete(entry.id)
    }
  }

  /** Records that `t` holds the product; false if it already did. */
  addHolder(entry: Entry, t: TargetQueues): boolean {
    if (entry.holders === undefined) entry.holders = [t]
    else if (entry.holders.includes(t)) return false
    else entry.holders.push(t)
    return true
  }

  /** Records that `t`, one of its holders, no longer holds the product. */
  dropHolder(entry: Entry, t: TargetQueues): void {
    const holders = entry.holders!
    if (holders.length === 1) entry.holders = undefined
    else holders.splice(holders.indexOf(t), 1)
    this.collect(entry)
  }

  /** Forgets `t` as a holder of every product; answers the products it held. */
  dropTarget(t: TargetQueues): string[] {
    const held: string[] = []
    for (const entry of this.entries.values()) {
      if (entry.holds(t)) {
        held.push(entry.id)
        this.dropHolder(entry, t)
      }
    }
    return held
  }

  /** Records a new waiting job as a reader of each product it depends on. */
  addWaiter(job: DispatchJob): void {
    const deps = job.deps
    if (deps !== undefined) for (const dep of deps) (dep.waiters ??= []).push(job)
  }

  /** A job stopped waiting: it no longer reads its dependencies' cache reports. */
  removeWaiter(job: DispatchJob): void {
    const deps = job.deps
    if (deps === undefined) return
    for (const dep of deps) {
      const waiters = dep.waiters
      if (waiters === undefined) continue
      // Compacted when half the list has stopped waiting: O(1) amortised per job.
      if (++dep.gone * 2 >= waiters.length) {
        let kept = 0
        for (const j of waiters) if (j.state === WAITING) waiters[kept++] = j
        waiters.length = kept
        dep.gone = 0
        if (kept === 0) {
          dep.waiters = undefined
          this.collect(dep)
        }
      }
    }
  }
}
