/**
 * Failure policies: how many attempts a job gets, how long it waits between them, and what its
 * order does when they are used up.
 */
import { z } from 'zod'
import type { FailurePolicy } from './model.ts'

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
