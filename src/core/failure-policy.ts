/**
 * Failure policies: how many attempts a job gets, how long it waits between them, and what its
 * order does when they are used up.
 */
import { z } from 'zod'
import type { FailurePolicy, OnExhausted } from './model.ts'

/** A failure policy as users write it; every field is optional and falls back in layers. */
export const failurePolicySchema = z.strictObject({
  attempts: z.number().int().min(1).max(1000).optional(),
  backoffMs: z.number().int().min(0).max(86_400_000).optional(),
  backoffFactor: z.number().min(1).max(100).optional(),
  maxBackoffMs: z.number().int().min(0).max(86_400_000).optional(),
  jitter: z.number().min(0).max(1).optional(),
  otherTarget: z.boolean().optional(),
  onExhausted: z
    .enum(['fail-order', 'continue'], { error: () => 'must be fail-order or continue' })
    .optional(),
})

/** What users write for a failure policy. */
export type FailurePolicyOptions = z.infer<typeof failurePolicySchema>

/** The built-in defaults: one attempt, and the order fails with the job (the seed's rule). */
export const defaultFailurePolicy: FailurePolicy = {
  attempts: 1,
  backoffMs: 1000,
  backoffFactor: 2,
  maxBackoffMs: 60_000,
  jitter: 0.2,
  otherTarget: false,
  onExhausted: 'fail-order',
}

/**
 * Resolves a job's policy from layers of options, most specific first (job, order, packet);
 * a field left out of every layer takes the built-in default.
 */
export function compileFailurePolicy(
  ...layers: readonly (FailurePolicyOptions | undefined)[]
): FailurePolicy {
  const out: FailurePolicy = { ...defaultFailurePolicy }
  for (let i = layers.length - 1; i >= 0; i--) {
    const layer = layers[i]
    if (layer === undefined) continue
    for (const [key, value] of Object.entries(layer)) {
      if (value !== undefined) (out as unknown as Record<string, unknown>)[key] = value
    }
  }
  return out
}

/**
 * The wait before attempt `attempt` (2 for the first retry): exponential, capped, and spread by
 * the policy's jitter using `random` in [0, 1).
 */
export function backoffDelay(policy: FailurePolicy, attempt: number, random: number): number {
  const base = Math.min(
    policy.maxBackoffMs,
    policy.backoffMs * Math.pow(policy.backoffFactor, Math.max(0, attempt - 2)),
  )
  const spread = base * policy.jitter * (2 * random - 1)
  return Math.max(0, Math.round(base + spread))
}

/** The reason of an attempt that never reached its target. */
export const NOT_DELIVERED = 'not-delivered'

/** A failed attempt, as {@link decideAfterFailure} weighs it. */
export interface FailedAttempt {
  /** The job's policy. */
  policy: FailurePolicy
  /** Attempts that count against the policy: every attempt but those never delivered. */
  counted: number
  /** Whether the job's order still runs: an order that has ended retries nothing. */
  orderRunning: boolean
  /** The target the attempt failed on. */
  target: string
  /** The targets the job's retries avoid so far. */
  avoid: string[] | undefined
  /** The failed result's reason: an attempt that was never delivered retries at once. */
  reason: string | undefined
}

/**
 * What a job does after a failed attempt: retry after `delay` ms, avoiding `avoid`, or give up
 * and let its order do what the policy says.
 */
export type FailureDecision =
  | { kind: 'retry'; delay: number; avoid: string[] | undefined }
  | { kind: 'give-up'; onExhausted: OnExhausted }

/**
 * Decides what follows a failed attempt. `random` gives numbers in [0, 1) for the jitter; it is
 * drawn only for a retry that waits, so an injected sequence is drawn no more often than that.
 */
export function decideAfterFailure(failed: FailedAttempt, random: () => number): FailureDecision {
  const { policy, counted } = failed
  if (counted >= policy.attempts || !failed.orderRunning) {
    return { kind: 'give-up', onExhausted: policy.onExhausted }
  }
  let avoid = failed.avoid
  if (policy.otherTarget && !(avoid ?? []).includes(failed.target)) {
    avoid = [...(avoid ?? []), failed.target]
  }
  const delay = failed.reason === NOT_DELIVERED ? 0 : backoffDelay(policy, counted + 1, random())
  return { kind: 'retry', delay, avoid }
}
