/**
 * Deleting Pods: one request at a time per Pod, none for a Pod already being deleted, none once
 * the driver closed (Pods left running are adopted after a restart). A delete that finds no Pod
 * is success; one that fails is reported and tried again when the driver next sweeps.
 */
import type { V1Pod } from '@kubernetes/client-node'
import { apiRefusal, describeError } from './cluster.ts'
import type { Cluster } from './cluster.ts'

/** What the driver hears of the deletes it asked for. */
export interface PodDeletionsListener {
  /** The Pod was not there (any more). */
  absent(name: string): void
  /** The delete failed; the Pod may still be there. */
  failed(error: Error): void
}

export class PodDeletions {
  private readonly cluster: () => Cluster | undefined
  private readonly listener: PodDeletionsListener
  private readonly inFlight = new Set<string>()
  private closed = false

  constructor(cluster: () => Cluster | undefined, listener: PodDeletionsListener) {
    this.cluster = cluster
    this.listener = listener
  }

  /** Deletes a Pod seen in view, unless it is being deleted already. */
  pod(pod: V1Pod): void {
    if ((pod.metadata?.deletionTimestamp ?? undefined) !== undefined) return
    if (pod.metadata?.name !== undefined) this.name(pod.metadata.name)
  }

  /** Deletes a Pod by name (one that may not be in view yet). */
  name(name: string): void {
    const cluster = this.cluster()
    if (cluster === undefined || this.closed || this.inFlight.has(name)) return
    this.inFlight.add(name)
    cluster.api
      .deleteNamespacedPod({ name, namespace: cluster.namespace })
      .then(
        () => {},
        (e: unknown) => {
          if (apiRefusal(e)?.code === 404) this.listener.absent(name)
          else if (!this.closed) {
            this.listener.failed(new Error(`cannot delete the Pod ${name}: ${describeError(e)}`))
          }
        },
      )
      .finally(() => this.inFlight.delete(name))
  }

  /** Sends no more deletes. */
  close(): void {
    this.closed = true
  }
}
