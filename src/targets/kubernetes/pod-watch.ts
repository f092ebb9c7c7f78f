/**
 * The target's view of its Pods: client-node's informer (`ListWatch`) over the Pods with
 * Lockstep's labels for one target, kept connected. It reads the kubeconfig, lists and watches,
 * and after any failure starts again with a backoff (0.5 s doubling to 30 s by default).
 *
 * What client-node 1.4's informer does on its own, and what it leaves to this room (read in
 * `cache.js` and `watch.js`):
 * - A watch the server ends cleanly is opened again at once from the last resourceVersion, with
 *   no event to the caller.
 * - A watch answered `410 Gone`, or a stream that carries an ERROR event with code 410 before it
 *   ends, makes it list again; pods missing from the new list are reported deleted.
 * - Anything else (a list or a watch refused or unreachable, a stream broken mid-way) emits
 *   `error` and the informer stops: nothing restarts it but a new `start()`. That is this room.
 * - `stop()` while a watch is being opened leaves that watch running, and aborting a watch
 *   emits one more `error`: this room aborts a watch that opens after it closed, and ignores
 *   errors once closed.
 *
 * Invariants: the view is `ready` only while the last list and watch both answered (the driver
 * offers no slot otherwise: it cannot see what its Pods do); a problem is reported once per new
 * message, and cleared once (`onProblem(undefined)`) when the cluster answers again; a watch
 * that was open and dropped is not a problem, only a reason to watch again; `close()` ends every
 * request and timer and never waits on the cluster.
 */
import { ListWatch, Watch } from '@kubernetes/client-node'
import type { KubeConfig, V1Pod } from '@kubernetes/client-node'
import type { Clock, Timer } from '../../core/clock.ts'
import { describeError, loadCluster } from './cluster.ts'
import type { Cluster } from './cluster.ts'
import { podSelector } from './pod.ts'
import type { ResolvedKubernetesTarget } from './targets-file.ts'

/** How the view waits between attempts to connect. */
export interface Backoff {
  /** The first wait. @default 500 */
  initialMs?: number
  /** The longest wait; each is twice the one before. @default 30000 */
  maxMs?: number
}

/** What the driver hears from the view. */
export interface PodWatchListener {
  /** A list request is about to be sent. */
  listing(): void
  /** A list arrived with these Pods; the cache holds them right after. */
  listed(pods: readonly V1Pod[]): void
  /** A Pod appeared or changed. */
  changed(pod: V1Pod): void
  /** A Pod is gone; `pod` is its last state. */
  deleted(pod: V1Pod): void
  /** The view is ready again: a list and a watch answered. */
  ready(): void
}

/** Options of a {@link PodWatch}. */
export interface PodWatchOptions {
  clock: Clock
  backoff?: Backoff
  /** How long one request to the API server may take. @default 30000 */
  requestTimeoutMs?: number
  onProblem: (message: string | undefined) => void
  onError: (error: unknown) => void
}

/** A stream that knows whether it was open when it ended, and closes if it opens too late. */
class Stream extends Watch {
  private readonly view: { closed: boolean; dropped: boolean }

  constructor(kubeconfig: KubeConfig, view: { closed: boolean; dropped: boolean }) {
    super(kubeconfig)
    this.view = view
  }

  override async watch(
    path: string,
    query: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, object: unknown, watchObject?: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    let open = false
    let ended = false
    const controller = await super.watch(path, query, callback, (err: unknown) => {
      ended = true
      // Set before `done`: the informer emits its error synchronously from it.
      if (open && err != null) this.view.dropped = true
      done(err)
    })
    if (!ended) open = true
    if (this.view.closed) controller.abort()
    return controller
  }
}

export class PodWatch {
  /** The cluster, once its kubeconfig was read. */
  cluster: Cluster | undefined
  /** True while the last list and watch answered. */
  ready = false
  /** True once a list has answered: the view knows every Pod that existed then. */
  listedOnce = false
  closed = false
  /** True when the error about to be heard ended a watch that was open. */
  dropped = false

  private readonly target: ResolvedKubernetesTarget
  private readonly listener: PodWatchListener
  private readonly options: PodWatchOptions
  private readonly abort = new AbortController()
  private readonly initialMs: number
  private readonly maxMs: number
  private readonly requestTimeoutMs: number
  private informer: ListWatch<V1Pod> | undefined
  private starting: Promise<void> | undefined
  private timer: Timer | undefined
  private delay: number
  private failures = 0
  private problem: string | undefined

  constructor(
    target: ResolvedKubernetesTarget,
    listener: PodWatchListener,
    options: PodWatchOptions,
  ) {
    this.target = target
    this.listener = listener
    this.options = options
    this.initialMs = options.backoff?.initialMs ?? 500
    this.maxMs = options.backoff?.maxMs ?? 30_000
    this.requestTimeoutMs = options.requestTimeoutMs ?? 30_000
    this.delay = this.initialMs
  }

  /** Connects for the first time; resolves when that attempt answered or failed. */
  open(): Promise<void> {
    return this.connect()
  }

  /** The Pods in view. */
  pods(): readonly V1Pod[] {
    const cluster = this.cluster
    return cluster === undefined ? [] : (this.informer?.list(cluster.namespace) ?? [])
  }

  /** One Pod in view, by name. */
  get(name: string): V1Pod | undefined {
    const cluster = this.cluster
    return cluster === undefined ? undefined : this.informer?.get(name, cluster.namespace)
  }

  /** Stops watching and aborts every request in flight. */
  async close(): Promise<void> {
    this.closed = true
    this.ready = false
    this.timer?.cancel()
    this.timer = undefined
    this.abort.abort()
    if (this.informer !== undefined) {
      await this.informer.stop()
      // A start in flight may still open a watch after the stop above; the stream aborts it.
      await this.starting
      await this.informer.stop()
    }
    this.cluster?.close()
  }

  /** The signal of one request: it ends at the timeout or when the view closes. */
  private signal(): AbortSignal {
    return AbortSignal.any([this.abort.signal, AbortSignal.timeout(this.requestTimeoutMs)])
  }

  private async connect(): Promise<void> {
    this.timer = undefined
    if (this.closed) return
    if (this.starting !== undefined) await this.starting
    if (this.informer === undefined) {
      try {
        this.cluster = loadCluster(this.target, () => this.signal())
      } catch (e) {
        this.fail((e as Error).message)
        return
      }
      this.informer = this.makeInformer(this.cluster)
    }
    const failures = this.failures
    this.starting = this.informer.start().catch((e: unknown) => this.failed(e))
    await this.starting
    this.starting = undefined
    if (this.closed || this.failures !== failures) return
    this.ready = true
    this.delay = this.initialMs
    if (this.problem !== undefined) {
      this.problem = undefined
      this.options.onProblem(undefined)
    }
    this.guard(() => this.listener.ready())
  }

  private makeInformer(cluster: Cluster): ListWatch<V1Pod> {
    const selector = podSelector(this.target.name)
    const list = async () => {
      this.guard(() => this.listener.listing())
      const answer = await cluster.api.listNamespacedPod({
        namespace: cluster.namespace,
        labelSelector: selector,
      })
      this.listedOnce = true
      this.guard(() => this.listener.listed(answer.items))
      return answer
    }
    const informer = new ListWatch<V1Pod>(
      `/api/v1/namespaces/${cluster.namespace}/pods`,
      new Stream(cluster.kubeconfig, this),
      list,
      false,
      selector,
    )
    informer.on('add', (pod) => this.guard(() => this.listener.changed(pod)))
    informer.on('update', (pod) => this.guard(() => this.listener.changed(pod)))
    informer.on('delete', (pod) => this.guard(() => this.listener.deleted(pod)))
    informer.on('error', (e: unknown) => this.failed(e))
    return informer
  }

  /** The informer stopped on an error: a dropped watch, or a cluster that does not answer. */
  private failed(e: unknown): void {
    const dropped = this.dropped
    this.dropped = false
    if (this.closed) return
    if (dropped) {
      this.failures++
      this.ready = false
      this.schedule()
    } else {
      const server = this.cluster?.server ?? 'the cluster'
      this.fail(`cannot list and watch Pods at ${server}: ${describeError(e)}`)
    }
  }

  private fail(message: string): void {
    if (this.closed) return
    this.failures++
    this.ready = false
    if (message !== this.problem) {
      this.problem = message
      this.options.onProblem(message)
    }
    this.schedule()
  }

  private schedule(): void {
    if (this.timer !== undefined || this.closed) return
    const delay = this.delay
    this.delay = Math.min(this.delay * 2, this.maxMs)
    this.timer = this.options.clock.setTimeout(() => {
      this.connect().catch(this.options.onError)
    }, delay)
  }

  private guard(fn: () => void): void {
    try {
      fn()
    } catch (e) {
      this.options.onError(e)
    }
  }
}
