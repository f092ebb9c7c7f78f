/**
 * Why a job still waits, as data: the API, the CLI and the dashboard show a {@link WaitReason},
 * and {@link describeWaitReason} is the one place that turns it into words.
 */
import type { OperationKind } from '../model.ts'
import type { DispatchJob, TargetQueues } from './dispatch-state.ts'
import { runsJob } from './dispatch-state.ts'
import type { ResourceTable } from './resource-table.ts'

/** Why a job still waits: data the API and the dashboard show. */
export type WaitReason =
  /** Held back for the workers that hold its product (`cached`) or its inputs (`deps`) until `until`. */
  | { kind: 'locality'; stage: 'cached' | 'deps'; preferred: string[]; until: number }
  /** A unique resource it needs is held by another job. */
  | { kind: 'resource'; resource: string; holder: string }
  /**
   * No live target may run it: the target it is strict to is not connected, or (with `op`) no
   * target that may take it runs its kind of operation; `refusal` says why that target does not
   * (and how to change it), when it said.
   */
  | { kind: 'no-eligible-target'; target?: string; op?: OperationKind; refusal?: string }
  /** Eligible, and waiting for a target with a free slot to take it. */
  | { kind: 'queued'; targets: 'any' | string[] }

/** A time of day in UTC, as a wait shows when it ends: `12:04:31 UTC`. */
export function utcTime(ms: number): string {
  return `${new Date(ms).toISOString().slice(11, 19)} UTC`
}

/** A job as words name it: `name (id)` when its name is known, else its id. */
export function jobWords(id: string, nameOf: (id: string) => string | undefined): string {
  const name = nameOf(id)
  return name === undefined ? id : `${name} (${id})`
}

/**
 * Words for a {@link WaitReason}; `nameOf` gives job names, so a holder reads as `name (id)`.
 */
export function describeWaitReason(
  reason: WaitReason,
  nameOf: (id: string) => string | undefined = () => undefined,
): string {
  switch (reason.kind) {
    case 'locality': {
      const who =
        reason.preferred.length > 0
          ? `${reason.preferred.join(', ')}, which hold`
          : 'a target that holds'
      const holding = reason.stage === 'cached' ? 'its product' : 'its inputs'
      return `locality delay until ${utcTime(reason.until)}: waiting for ${who} ${holding}`
    }
    case 'resource':
      return `waiting for resource ${reason.resource}, held by job ${jobWords(reason.holder, nameOf)}`
    case 'no-eligible-target': {
      const why = reason.refusal === undefined ? '' : ` (${reason.refusal})`
      if (reason.op !== undefined) {
        return reason.target !== undefined
          ? `target ${reason.target} does not run ${reason.op} jobs${why}`
          : `no connected target runs ${reason.op} jobs${why}`
      }
      return reason.target !== undefined
        ? `target ${reason.target} is not connected`
        : 'no target is connected'
    }
    case 'queued':
      return reason.targets === 'any'
        ? 'queued for the next free slot'
        : `queued for the next free slot on ${reason.targets.join(', ')}`
  }
}

/**
 * Why waiting `job` waits: first a busy resource, then a strict target (gone, not running the
 * job's kind, or busy), then whether any target runs its kind, then its locality stage, then
 * whether any target may take it at all.
 */
export function waitReason(
  job: DispatchJob,
  resources: ResourceTable<DispatchJob>,
  targets: ReadonlyMap<string, TargetQueues>,
): WaitReason {
  for (const resource of job.job.uses ?? []) {
    const holder = resources.holder(resource)
    if (holder !== undefined) return { kind: 'resource', resource, holder: holder.job.id }
  }
  const op = job.job.opKind
  const strict = job.strict
  if (strict !== undefined) {
    if (!strict.live) return { kind: 'no-eligible-target', target: strict.id }
    if (op !== undefined && !runsJob(strict, job)) {
      return {
        kind: 'no-eligible-target',
        target: strict.id,
        op,
        ...(strict.refusal === undefined ? {} : { refusal: strict.refusal }),
      }
    }
    return { kind: 'queued', targets: [strict.id] }
  }
  if (op !== undefined) {
    let runner = false
    for (const t of targets.values()) if (t.live && !t.strictOnly && runsJob(t, job)) runner = true
    if (!runner) return { kind: 'no-eligible-target', op }
  }
  if (job.stage === 1) {
    const preferred = job.entry.holders?.map((t) => t.id) ?? []
    return { kind: 'locality', stage: 'cached', preferred, until: job.stageDue }
  }
  if (job.stage === 2) {
    const preferred = new Set<string>()
    for (const dep of job.deps ?? []) for (const t of dep.holders ?? []) preferred.add(t.id)
    return { kind: 'locality', stage: 'deps', preferred: [...preferred], until: job.stageDue }
  }
  for (const t of targets.values()) if (t.live) return { kind: 'queued', targets: 'any' }
  return { kind: 'no-eligible-target' }
}
