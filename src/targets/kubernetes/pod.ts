/**
 * One attempt as one Pod, in pure functions: the Pod's name, its manifest, and what its status
 * says about the attempt. The driver does the I/O; everything it decides about a Pod is here.
 *
 * Invariants:
 * - An attempt has one Pod name, derived from the job id and the attempt number alone, so a
 *   scheduler that restarts, or a create that is retried, finds the same Pod and never makes a
 *   second one.
 * - A Pod gets no credentials and nothing of the scheduler: no service account token, no service
 *   links; its environment is the operation's `env`, the job's resources and Lockstep's job
 *   variables, which the operation cannot override.
 * - The command and the environment reach the container as written, as they reach an `exec`
 *   job on a worker: Kubernetes' `$(VAR)` expansion is escaped.
 * - Every Pod that ends is classified into one {@link JobResult} with a reason a person can read:
 *   `exit-code`, `oom-killed`, `deadline-exceeded`, `evicted`, `image-pull`, `artefacts`,
 *   `pod-deleted`, `pod-failed`.
 */
import { createHash } from 'node:crypto'
import type { V1ContainerStatus, V1EnvVar, V1Pod } from '@kubernetes/client-node'
import { parseArtefacts, resourceVariables } from '../../core/job-variables.ts'
import type { JobResult } from '../../core/model.ts'
import type { Assignment } from '../../core/protocol.ts'
import { isLabelValue } from './targets-file.ts'

/** The label every Pod of Lockstep's carries, with {@link MANAGED_BY}. */
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by'
/** The value of {@link MANAGED_BY_LABEL}. */
export const MANAGED_BY = 'lockstep'
/** The label naming the target a Pod belongs to. */
export const TARGET_LABEL = 'lockstep.dev/target'
/** The label and the annotation naming the order's owner. */
export const OWNER_KEY = 'lockstep.dev/owner'
/** The one container of a Pod. */
export const CONTAINER = 'job'

/** The longest message kept from a Pod (a termination message is at most 4 KiB anyway). */
const MAX_MESSAGE = 4000

/** The waiting reasons of a container whose image cannot be pulled yet; they may clear. */
const PULL_TROUBLE = new Set(['ImagePullBackOff', 'ErrImagePull'])
/** The waiting reasons of a container whose image will never be pulled: the attempt fails now. */
const PULL_HOPELESS = new Set(['InvalidImageName', 'ErrImageNeverPull'])

/** Where an attempt's Pod runs. */
export interface PodTarget {
  /** The target's name: the `lockstep.dev/target` label. */
  name: string
  namespace: string
}

/** The label selector of a target's Pods: Lockstep's, on this target. */
export function podSelector(target: string): string {
  return `${MANAGED_BY_LABEL}=${MANAGED_BY},${TARGET_LABEL}=${target}`
}

/**
 * The Pod name of an attempt: `lockstep-<jobId>-<attempt>`, a DNS-1123 label for Lockstep's
 * lowercase UUIDv7 job ids. Another id is hashed into the name instead, so the name stays
 * valid and still one per attempt.
 */
export function podName(jobId: string, attempt: number): string {
  const id = /^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$/.test(jobId)
    ? jobId
    : `h${createHash('sha256').update(jobId).digest('hex').slice(0, 39)}`
  return `lockstep-${id}-${attempt}`
}

/** Escapes Kubernetes' `$(VAR)` expansion: the container sees the text as written. */
function literal(text: string): string {
  return text.replaceAll('$', '$$$$')
}

/**
 * The Pod of one attempt. `owner`, the order's owner, labels the Pod when it is a valid label
 * value and is always kept as an annotation. Throws for an operation that is not an image.
 */
export function podManifest(a: Assignment, target: PodTarget, owner?: string): V1Pod {
  const op = a.op
  if (!('image' in op)) {
    throw new Error(`a Kubernetes target runs image operations only, not ${Object.keys(op)[0]}`)
  }
  const env: Record<string, string> = {
    ...op.env,
    ...resourceVariables(a.resources),
    // Last, so that neither the operation nor a resource can pass for Lockstep's own.
    LOCKSTEP_JOB_ID: a.jobId,
    LOCKSTEP_ORDER_ID: a.orderId,
    LOCKSTEP_JOB_NAME: a.name,
    LOCKSTEP_ATTEMPT: String(a.attempt),
  }
  const labels: Record<string, string> = {
    [MANAGED_BY_LABEL]: MANAGED_BY,
    [TARGET_LABEL]: target.name,
  }
  for (const [key, value] of [
    ['lockstep.dev/order', a.orderId],
    ['lockstep.dev/job', a.jobId],
    ['lockstep.dev/attempt', String(a.attempt)],
    [OWNER_KEY, owner],
  ] as const) {
    if (value !== undefined && isLabelValue(value)) labels[key] = value
  }
  const annotations: Record<string, string> = { 'lockstep.dev/job-name': a.name }
  if (owner !== undefined) annotations[OWNER_KEY] = owner
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: podName(a.jobId, a.attempt),
      namespace: target.namespace,
      labels,
      annotations,
    },
    spec: {
      restartPolicy: 'Never',
      // The Pod runs user code: it gets no credentials and learns nothing of the cluster.
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      ...(a.timeoutMs === undefined
        ? {}
        : { activeDeadlineSeconds: Math.max(1, Math.ceil(a.timeoutMs / 1000)) }),
      containers: [
        {
          name: CONTAINER,
          image: op.image,
          ...(op.command === undefined ? {} : { command: op.command.map(literal) }),
          env: Object.entries(env).map(([name, value]): V1EnvVar => ({
            name,
            value: literal(value),
          })),
          terminationMessagePolicy: 'FallbackToLogsOnError',
        },
      ],
    },
  }
}

/** What a Pod's status says about its attempt. */
export type PodOutcome =
  /**
   * Not started yet. `pullingSince` is when its image began failing to pull (the `pullingSince`
   * given, or now), absent while it is not in pull trouble: the caller keeps it and passes it
   * back, and looks again when the pull timeout runs out.
   */
  | { state: 'pending'; pullingSince?: number }
  /** Its container runs (or its node stopped reporting: `Unknown`). */
  | { state: 'running' }
  /** The attempt is over. */
  | { state: 'ended'; result: JobResult }

/** True while a Pod holds a slot: not Succeeded or Failed, or being deleted. */
export function isActive(pod: V1Pod): boolean {
  const phase = pod.status?.phase
  return (
    (phase !== 'Succeeded' && phase !== 'Failed') ||
    (pod.metadata?.deletionTimestamp ?? undefined) !== undefined
  )
}

/** True once the Pod's phase is Succeeded or Failed. */
export function isTerminal(pod: V1Pod): boolean {
  const phase = pod.status?.phase
  return phase === 'Succeeded' || phase === 'Failed'
}

function clip(text: string | undefined): string | undefined {
  const t = text?.trim()
  if (t === undefined || t === '') return undefined
  return t.length <= MAX_MESSAGE ? t : `${t.slice(0, MAX_MESSAGE)}…`
}

function jobContainer(pod: V1Pod): V1ContainerStatus | undefined {
  const all = pod.status?.containerStatuses ?? []
  return all.find((c) => c.name === CONTAINER) ?? all[0]
}

/**
 * Classifies a Pod's status. `now` and `pullingSince` are Unix milliseconds; an image that
 * fails to pull for `imagePullTimeoutMs` from `pullingSince` fails the attempt as `image-pull`,
 * one that can never be pulled (`InvalidImageName`) fails it at once. A Pod being deleted
 * before it ended fails as `pod-deleted`: the caller does not ask about Pods it deletes itself.
 */
export function podOutcome(
  pod: V1Pod,
  now: number,
  imagePullTimeoutMs: number,
  pullingSince?: number,
): PodOutcome {
  const status = pod.status ?? {}
  const container = jobContainer(pod)
  const terminated = container?.state?.terminated
  if (status.phase === 'Succeeded') {
    const parsed = parseArtefacts(terminated?.message ?? '')
    if (!parsed.ok)
      return ended({ ok: false, exitCode: 0, reason: 'artefacts', message: parsed.problem })
    return ended({
      ok: true,
      exitCode: 0,
      ...(parsed.artefacts.length === 0 ? {} : { artefacts: parsed.artefacts }),
    })
  }
  if (status.phase === 'Failed') return ended(failure(pod, terminated))
  if ((pod.metadata?.deletionTimestamp ?? undefined) !== undefined) {
    return ended({
      ok: false,
      reason: 'pod-deleted',
      message: `the Pod ${pod.metadata?.name ?? ''} was deleted before it ended`,
    })
  }
  if (status.phase === 'Running' || status.phase === 'Unknown') return { state: 'running' }
  const waiting = container?.state?.waiting
  const why = waiting?.reason ?? ''
  if (PULL_HOPELESS.has(why)) {
    return ended({
      ok: false,
      reason: 'image-pull',
      message: pullMessage(pod, why, waiting?.message),
    })
  }
  if (PULL_TROUBLE.has(why)) {
    const since = pullingSince ?? now
    if (now - since >= imagePullTimeoutMs) {
      return ended({
        ok: false,
        reason: 'image-pull',
        message: `${pullMessage(pod, why, waiting?.message)} (for ${Math.round((now - since) / 1000)} s)`,
      })
    }
    return { state: 'pending', pullingSince: since }
  }
  return { state: 'pending' }
}

function ended(result: JobResult): PodOutcome {
  return { state: 'ended', result }
}

function pullMessage(pod: V1Pod, reason: string, message: string | undefined): string {
  const image = pod.spec?.containers[0]?.image ?? 'the image'
  return clip(`cannot pull ${image}: ${reason}${message === undefined ? '' : `: ${message}`}`)!
}

/** Why a Failed Pod failed, the Pod's own reason first: it explains the container's end. */
function failure(
  pod: V1Pod,
  terminated: NonNullable<V1ContainerStatus['state']>['terminated'],
): JobResult {
  const status = pod.status ?? {}
  const exit = terminated?.exitCode
  const withExit = exit === undefined ? {} : { exitCode: exit }
  if (status.reason === 'DeadlineExceeded') {
    const deadline = pod.spec?.activeDeadlineSeconds
    return {
      ok: false,
      reason: 'deadline-exceeded',
      message:
        clip(status.message) ??
        `ran longer than its deadline${deadline === undefined ? '' : ` of ${deadline} s`}`,
    }
  }
  if (status.reason === 'Evicted') {
    return { ok: false, reason: 'evicted', message: clip(status.message) ?? 'the Pod was evicted' }
  }
  if (terminated?.reason === 'OOMKilled') {
    const said = clip(terminated.message)
    return {
      ok: false,
      ...withExit,
      reason: 'oom-killed',
      message: `the container ran out of memory and was killed${said === undefined ? '' : `: ${said}`}`,
    }
  }
  if (exit !== undefined) {
    const message = clip(terminated?.message)
    return {
      ok: false,
      exitCode: exit,
      reason: 'exit-code',
      ...(message === undefined ? {} : { message }),
    }
  }
  const words = [status.reason, status.message].filter((w) => w !== undefined && w !== '')
  return {
    ok: false,
    reason: 'pod-failed',
    message: clip(words.join(': ')) ?? 'the Pod failed before its container ran',
  }
}
