/**
 * Where a job runs when more than one target could: a retry avoids the targets it failed on while
 * another live target could take it, and the push cycle shares slots between flexible jobs and
 * jobs strict to a target, so that a strict job is not starved by flexible ones that could run
 * elsewhere. Pure: each answer is a function of the job, the targets and the slots given.
 */
import type { DispatchJob, TargetQueues } from './dispatch-state.ts'
import { runsJob } from './dispatch-state.ts'

/** True when `job` should not run on `t` because another live target of `targets` could run it. */
export function avoids(
  job: DispatchJob,
  t: TargetQueues,
  targets: ReadonlyMap<string, TargetQueues>,
): boolean {
  const avoid = job.job.avoid
  // A strict job has nowhere else to go.
  if (avoid === undefined || job.strict !== undefined || !avoid.includes(t.id)) return false
  for (const other of targets.values())
    if (other.live && !other.strictOnly && runsJob(other, job) && !avoid.includes(other.id))
      return true
  return false
}

/**
 * The target that runs `job` in a push cycle, taken from a queue of `from` (undefined: the global
 * queue), given the free `slots` left; undefined when none should this cycle.
 */
export function cycleTarget(
  job: DispatchJob,
  from: TargetQueues | undefined,
  slots: ReadonlyMap<TargetQueues, number>,
  targets: ReadonlyMap<string, TargetQueues>,
): TargetQueues | undefined {
  if (job.strict !== undefined) return from
  // A flexible job taken from a target's local queue stays there for locality, unless that
  // target's slots are all wanted by strict jobs and the job may go anywhere.
  const protect = from !== undefined && job.stage === 3 && slots.get(from)! <= from.strictWaiting
  if (from === undefined || protect || avoids(job, from, targets)) {
    return placeFlexible(job, slots, targets) ?? (protect ? from : undefined)
  }
  return from
}

/** The target in `slots` for a flexible job: most spare slots beyond strict demand first. */
function placeFlexible(
  job: DispatchJob,
  slots: ReadonlyMap<TargetQueues, number>,
  targets: ReadonlyMap<string, TargetQueues>,
): TargetQueues | undefined {
  let best: TargetQueues | undefined
  let bestSpare = -Infinity
  let bestFree = 0
  for (const [t, n] of slots) {
    if (n <= 0 || t.strictOnly || !runsJob(t, job) || avoids(job, t, targets)) continue
    const spare = n - t.strictWaiting
    if (spare > bestSpare || (spare === bestSpare && n > bestFree)) {
      best = t
      bestSpare = spare
      bestFree = n
    }
  }
  return best
}
