/**
 * Why a job has not started, in words: the one place a {@link JobWait} becomes a sentence, for
 * the API's `wait.text`, the CLI and the dashboard. The dispatch core's reasons are worded by
 * `describeWaitReason`; this adds the engine's own (locks, backoff, a shared product).
 */
import { describeWaitReason, jobWords, utcTime } from '../dispatch/wait-reason.ts'
import type { JobWait } from './orders-in-flight.ts'

/** A sentence for `wait`; `nameOf` gives the names of the jobs it mentions, when known. */
export function describeJobWait(
  wait: JobWait,
  nameOf: (id: string) => string | undefined = () => undefined,
): string {
  switch (wait.kind) {
    case 'locks': {
      const n = wait.waitingFor.length
      if (n === 0) return 'its locks are released; it is about to be ready'
      const names = wait.waitingFor.map((id) => nameOf(id) ?? id).join(', ')
      return `waiting for ${n} ${n === 1 ? 'job' : 'jobs'} before it: ${names}`
    }
    case 'backoff':
      return `retrying after a failed attempt at ${utcTime(wait.until)}`
    case 'same-product':
      return `waiting for job ${jobWords(wait.job, nameOf)}, which makes the same product`
    default:
      return describeWaitReason(wait, nameOf)
  }
}
