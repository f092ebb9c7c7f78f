/**
 * The Kubernetes driver: one cluster target, one Pod per attempt. The push loop hands it
 * assignments and stops; it creates and deletes Pods through the API server and learns how each
 * ended from its view of the target's Pods ({@link PodWatch}), classified by `podOutcome`.
 *
 * Invariants:
 * - An attempt has one Pod, by name (`podName`): a create answered `409 AlreadyExists` adopts
 *   the Pod that is there, a repeated start or a resume returns the attempt's one outcome, and
 *   nothing creates a Pod for an attempt again.
 * - Availability is the target's `availability` less every attempt it started or adopted and
 *   not yet ended, together with every Pod in view that still holds a slot (not Succeeded or
 *   Failed, or being deleted); never below 0; 0 until the first list and while the view cannot
 *   see the cluster. `start()` beyond it is refused, so the target never runs more.
 * - Each attempt's outcome is settled once and its promise never rejects: from the Pod's end,
 *   from a Pod that vanished (`pod-deleted`), from a create that failed (`pod-refused`,
 *   `target-unreachable`), from a stop (`cancelled`), or at `close()`.
 * - A Pod whose attempt ended is deleted: its record is the attempt's. A Pod of Lockstep's for
 *   this target that no attempt owns is deleted once `resume()` has said which are owned.
 * - The driver holds the kubeconfig's credentials; the Pods get none.
 */
import type { V1Pod } from '@kubernetes/client-node'
import { systemClock } from '../../core/clock.ts'
import type { Clock, Timer } from '../../core/clock.ts'
import type { JobResult } from '../../core/model.ts'
import type { Assignment, RunningAttempt, Stop, TargetRegistration } from '../../core/protocol.ts'
import type { AttemptOutcome, AttemptUnit, TargetDriver } from '../target-driver.ts'
import { createFailure, isAlreadyExists, mayPass } from './cluster.ts'
import { isActive, podManifest, podName, podOutcome } from './pod.ts'
import { PodDeletions } from './pod-deletions.ts'
import { PodWatch } from './pod-watch.ts'
import type { Backoff } from './pod-watch.ts'
import type { ResolvedKubernetesTarget } from './targets-file.ts'

/** Options of a {@link KubernetesDriver}. */
export interface KubernetesDriverOptions {
  /**
   * Hears that the cluster cannot be used (an unreadable kubeconfig, a cluster that does not
   * answer or refuses to list Pods), in words, and `undefined` once it answers again. The target
   * offers no slot meanwhile. @default ignored
   */
  onProblem?: (message: string | undefined) => void
  /** Hears unexpected failures: a Pod that cannot be deleted, a bug in a handler. @default ignored */
  onError?: (error: unknown) => void
  /** Time for pull timeouts and reconnect delays. @default systemClock */
  clock?: Clock
  /** The waits between attempts to reach the cluster. @default 0.5 s doubling to 30 s */
  backoff?: Backoff
  /** How long one request to the API server may take. @default 30000 */
  requestTimeoutMs?: number
  /**
   * The owner of an assignment's order, for the Pod's `lockstep.dev/owner` label and annotation.
   * The assignment does not carry it. @default none: Pods are not marked with an owner
   */
  ownerOf?: (assignment: Assignment) => string | undefined
}

/** One attempt the driver started or adopted; kept until its Pod is known to be gone. */
interface Attempt {
  name: string
  outcome: Promise<AttemptOutcome>
  /** Settles the outcome; undefined once it is settled. */
  settle: ((outcome: AttemptOutcome) => void) | undefined
  /**
   * The sequence number from which its Pod is known to exist (its create answered, or it was
   * seen); undefined while a create is in flight or, for an adopted attempt, before a list.
   */
  since: number | undefined
  /** Adopted by `resume()` and not yet compared with a list. */
  resumed: boolean
  /**
   * Its outcome is stored (`recorded`): its Pod may be deleted. Until then an ended Pod stays,
   * so that a scheduler that dies before storing the outcome reads it again from the Pod.
   */
  recorded: boolean
  /** The last phase its Pod was seen in. */
  phase: string | undefined
  /** When its image began failing to pull, while it does. */
  pullingSince: number | undefined
  pullTimer: Timer | undefined
}

const STOPPING: JobResult = {
  ok: false,
  reason: 'cancelled',
  message: 'the scheduler is stopping; the Pod is left to run and is adopted on restart',
}

/** Tries of a create that got no answer, or a 5xx, 429 or 408; the wait grows by this each time. */
const CREATE_TRIES = 3
const CREATE_RETRY_MS = 200

export class KubernetesDriver implements TargetDriver {
  readonly id: string
  readonly registration: TargetRegistration
  private readonly target: ResolvedKubernetesTarget
  private readonly clock: Clock
  private readonly onError: (error: unknown) => void
  private readonly ownerOf: ((assignment: Assignment) => string | undefined) | undefined
  private readonly watch: PodWatch
  /** Attempts by Pod name. */
  private readonly attempts = new Map<string, Attempt>()
  private readonly deletions: PodDeletions
  /** Orders creates and lists: a Pod created before a list was sent is in that list. */
  private seq = 0
  private listSent = 0
  /** Pods no attempt owns are deleted: `resume()` has said which attempts run here. */
  private collecting = false
  private opening: Promise<void> | undefined
  private closed = false

  constructor(target: ResolvedKubernetesTarget, options: KubernetesDriverOptions = {}) {
    this.target = target
    this.id = target.name
    this.registration = {
      id: target.name,
      kind: 'kubernetes',
      slots: target.availability,
      labels: target.labels,
      runs: ['image'],
    }
    this.clock = options.clock ?? systemClock
    this.onError = options.onError ?? (() => {})
    this.ownerOf = options.ownerOf
    this.deletions = new PodDeletions(() => this.watch.cluster, {
      absent: (name) => {
        if (this.attempts.get(name)?.settle === undefined) this.attempts.delete(name)
      },
      failed: (e) => this.onError(e),
    })
    this.watch = new PodWatch(
      target,
      {
        listing: () => {
          this.listSent = ++this.seq
        },
        listed: (pods) => this.listed(pods),
        changed: (pod) => this.changed(pod),
        deleted: (pod) => this.deleted(pod),
        // Deletes that failed are tried again once the cluster answers again.
        ready: () => this.sweep(),
      },
      {
        clock: this.clock,
        onProblem: options.onProblem ?? (() => {}),
        onError: this.onError,
        ...(options.backoff === undefined ? {} : { backoff: options.backoff }),
        ...(options.requestTimeoutMs === undefined
          ? {}
          : { requestTimeoutMs: options.requestTimeoutMs }),
      },
    )
  }

  /**
   * Reads the kubeconfig and starts watching the target's Pods. Resolves once the first attempt
   * to reach the cluster answered or failed; never rejects: a problem goes to `onProblem`, and
   * the driver keeps trying with a backoff.
   */
  open(): Promise<void> {
    this.opening ??= this.watch.open()
    return this.opening
  }

  /** Whether the driver sees the cluster now: it listed and watches the target's Pods. */
  get ready(): boolean {
    return this.watch.ready
  }

  availability(): number {
    if (this.closed || !this.watch.ready) return 0
    return Math.max(0, this.target.availability - this.busy())
  }

  /** Attempts running or adopted, and Pods holding a slot: each counted once. */
  private busy(): number {
    const names = new Set<string>()
    for (const [name, a] of this.attempts) if (a.settle !== undefined) names.add(name)
    for (const pod of this.watch.pods()) {
      if (isActive(pod) && pod.metadata?.name !== undefined) names.add(pod.metadata.name)
    }
    return names.size
  }

  start(assignment: Assignment): Promise<AttemptOutcome> {
    const name = podName(assignment.jobId, assignment.attempt)
    const known = this.attempts.get(name)
    if (known?.settle !== undefined) return known.outcome
    if (this.closed) return Promise.resolve({ result: STOPPING })
    if (this.watch.cluster === undefined) {
      return Promise.resolve({
        result: {
          ok: false,
          reason: 'target-unreachable',
          message: `${this.id} has no usable kubeconfig yet`,
        },
      })
    }
    const busy = this.busy()
    if (busy >= this.target.availability) {
      return Promise.resolve({
        result: {
          ok: false,
          reason: 'no-capacity',
          message: `${this.id} runs ${busy} Pods of its availability of ${this.target.availability}`,
        },
      })
    }
    const a = this.track(name)
    this.create(a, assignment).catch(this.onError)
    return a.outcome
  }

  stop(stop: Stop): void {
    const name = podName(stop.jobId, stop.attempt)
    const a = this.attempts.get(name)
    if (a !== undefined) {
      this.finish(a, { ok: false, reason: 'cancelled', message: stop.reason })
      // A stop comes once the attempt's end is stored.
      a.recorded = true
    }
    // A Pod whose create is in flight is deleted when the create answers.
    const creating = a !== undefined && a.since === undefined && !a.resumed
    if (!creating) this.deletions.name(name)
  }

  resume(attempts: readonly RunningAttempt[]): Promise<AttemptOutcome>[] {
    const outcomes = attempts.map((r) => {
      const name = podName(r.jobId, r.attempt)
      const known = this.attempts.get(name)
      if (known?.settle !== undefined) return known.outcome
      if (this.closed) return Promise.resolve({ result: STOPPING })
      const a = this.track(name)
      a.resumed = true
      if (this.watch.listedOnce) this.adopt(a, this.watch.get(name) !== undefined)
      return a.outcome
    })
    this.collecting = true
    if (this.watch.listedOnce) this.sweep()
    return outcomes
  }

  recorded(attempt: RunningAttempt): void {
    const name = podName(attempt.jobId, attempt.attempt)
    const a = this.attempts.get(name)
    if (a === undefined) return
    a.recorded = true
    const pod = this.watch.get(name)
    if (pod !== undefined && a.settle === undefined) this.deletions.pod(pod)
  }

  unit(attempt: RunningAttempt): AttemptUnit | undefined {
    const name = podName(attempt.jobId, attempt.attempt)
    const pod = this.watch.get(name)
    if (pod !== undefined) return { name, phase: pod.status?.phase ?? 'Pending' }
    const a = this.attempts.get(name)
    if (a === undefined) return undefined
    if (a.phase !== undefined) return { name, phase: a.phase }
    return a.settle === undefined ? undefined : { name, phase: 'Pending' }
  }

  /**
   * Stops watching and ends every request. Pods keep running (a restart adopts them); the
   * attempts waiting here settle as cancelled, and nothing waits on the cluster.
   */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    for (const a of this.attempts.values()) this.finish(a, STOPPING)
    this.deletions.close()
    await this.watch.close()
  }

  private track(name: string): Attempt {
    let settle!: (outcome: AttemptOutcome) => void
    const outcome = new Promise<AttemptOutcome>((resolve) => {
      settle = resolve
    })
    const a: Attempt = {
      name,
      outcome,
      settle,
      since: undefined,
      resumed: false,
      recorded: false,
      phase: undefined,
      pullingSince: undefined,
      pullTimer: undefined,
    }
    this.attempts.set(name, a)
    return a
  }

  private finish(a: Attempt, result: JobResult): void {
    const settle = a.settle
    if (settle === undefined) return
    a.settle = undefined
    a.pullTimer?.cancel()
    a.pullTimer = undefined
    settle({ result })
  }

  private async create(a: Attempt, assignment: Assignment): Promise<void> {
    const cluster = this.watch.cluster!
    let body: V1Pod
    try {
      body = podManifest(
        assignment,
        { name: this.id, namespace: cluster.namespace },
        this.ownerOf?.(assignment),
      )
    } catch (e) {
      this.finish(a, { ok: false, reason: 'refused', message: (e as Error).message })
      this.attempts.delete(a.name)
      return
    }
    for (let tried = 1; ; tried++) {
      try {
        await cluster.api.createNamespacedPod({ namespace: cluster.namespace, body })
        break
      } catch (e) {
        // A Pod already there is this attempt's: a create sent twice, or before a restart.
        if (isAlreadyExists(e)) break
        // No answer (a kept-alive connection the server had just closed), or one that may pass:
        // the Pod's name is the attempt's, so sending the create again makes no second Pod.
        const again = tried < CREATE_TRIES && !this.closed && a.settle !== undefined
        if (!again || !mayPass(e)) {
          return this.createFailed(a, e)
        }
        await new Promise<void>((resolve) =>
          this.clock.setTimeout(resolve, CREATE_RETRY_MS * tried),
        )
        if (a.settle === undefined) break
      }
    }
    a.since = ++this.seq
    if (a.settle === undefined) {
      // Stopped while the create was in flight.
      this.deletions.name(a.name)
      return
    }
    const pod = this.watch.get(a.name)
    if (pod !== undefined) this.changed(pod)
  }

  private createFailed(a: Attempt, e: unknown): void {
    if (this.closed) return this.finish(a, STOPPING)
    const failure = createFailure(e, a.name, this.id, this.watch.cluster?.server ?? this.id)
    this.finish(a, failure.result)
    // A refused create made no Pod. One unanswered may have: the attempt stays known until a list
    // shows no Pod, and a Pod that shows up is deleted.
    if (failure.podMayExist) a.since = ++this.seq
    else this.attempts.delete(a.name)
  }

  /** A list arrived; the informer's cache takes its Pods right after. */
  private listed(pods: readonly V1Pod[]): void {
    const present = new Set(pods.map((p) => p.metadata?.name))
    for (const a of [...this.attempts.values()]) {
      if (a.resumed) {
        this.adopt(a, present.has(a.name))
      } else if (a.since !== undefined && a.since < this.listSent && !present.has(a.name)) {
        // Its Pod was made before this list was asked for, and is not in it: it is gone.
        this.finish(a, {
          ok: false,
          reason: 'pod-deleted',
          message: `the Pod ${a.name} was deleted before it ended`,
        })
        this.attempts.delete(a.name)
      }
    }
  }

  /** An attempt from before a restart, once a list has shown whether its Pod is there. */
  private adopt(a: Attempt, present: boolean): void {
    a.resumed = false
    if (present) {
      a.since = 0
      const pod = this.watch.get(a.name)
      // In the first list the cache is not filled yet: the informer's add event judges it.
      if (pod !== undefined) this.changed(pod)
      return
    }
    this.finish(a, {
      ok: false,
      reason: 'pod-deleted',
      message: `the Pod ${a.name} is gone: it was deleted while the scheduler was away`,
    })
    this.attempts.delete(a.name)
  }

  private changed(pod: V1Pod): void {
    const name = pod.metadata?.name
    if (name === undefined) return
    const a = this.attempts.get(name)
    if (a === undefined) {
      if (this.collecting) this.deletions.pod(pod)
      return
    }
    if (pod.status?.phase !== undefined) a.phase = pod.status.phase
    if (a.settle === undefined) {
      if (a.recorded) this.deletions.pod(pod)
      return
    }
    if (a.resumed) return
    a.since ??= ++this.seq
    this.judge(a, pod)
  }

  private judge(a: Attempt, pod: V1Pod): void {
    const timeout = this.target.imagePullTimeoutMs
    const outcome = podOutcome(pod, this.clock.now(), timeout, a.pullingSince)
    if (outcome.state === 'ended') {
      this.finish(a, outcome.result)
      if (a.recorded) this.deletions.pod(pod)
      return
    }
    const since = outcome.state === 'pending' ? outcome.pullingSince : undefined
    a.pullingSince = since
    if (since === undefined) {
      a.pullTimer?.cancel()
      a.pullTimer = undefined
    } else if (a.pullTimer === undefined) {
      // No event comes when a pull has been failing long enough: look again then.
      a.pullTimer = this.clock.setTimeout(
        () => {
          a.pullTimer = undefined
          const now = this.watch.get(a.name)
          if (now !== undefined && a.settle !== undefined) this.judge(a, now)
        },
        Math.max(0, since + timeout - this.clock.now()),
      )
    }
  }

  private deleted(pod: V1Pod): void {
    const name = pod.metadata?.name
    if (name === undefined) return
    const a = this.attempts.get(name)
    if (a === undefined) return
    // A Pod that ended was judged when it did: an attempt still open here lost its Pod.
    this.finish(a, {
      ok: false,
      reason: 'pod-deleted',
      message: `the Pod ${name} was deleted before it ended`,
    })
    this.attempts.delete(name)
  }

  /** Deletes, where needed, the Pods whose attempts ended and those no attempt owns. */
  private sweep(): void {
    for (const pod of this.watch.pods()) {
      const name = pod.metadata?.name
      if (name === undefined) continue
      const a = this.attempts.get(name)
      if (a === undefined ? this.collecting : a.settle === undefined && a.recorded) {
        this.deletions.pod(pod)
      }
    }
  }
}
