/**
 * A worker started before its scheduler, or while the scheduler restarts or its database is
 * down, waits for it instead of exiting: transient refusals are retried with backoff, anything
 * else (a bad token, a registration the scheduler refuses) ends the start at once.
 */
import type { Logger } from 'pino'
import { LockstepError } from '../core/errors.ts'

/** True for what a later try may not meet: the scheduler unreachable, starting, or failing. */
export function isTransient(e: unknown): boolean {
  return e instanceof LockstepError && e.status >= 500
}

/** Runs `fn` until it does not fail transiently, waiting 250 ms, then twice as long, up to 5 s. */
export async function untilReachable<T>(fn: () => Promise<T>, log: Logger): Promise<T> {
  for (let wait = 250; ; wait = Math.min(wait * 2, 5_000)) {
    try {
      return await fn()
    } catch (e) {
      if (!isTransient(e)) throw e
      log.warn(
        { error: (e as Error).message, retryInMs: wait },
        'the scheduler is not reachable yet',
      )
      await new Promise((r) => setTimeout(r, wait))
    }
  }
}
