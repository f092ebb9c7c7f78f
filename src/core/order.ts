/**
 * Orders (seed 002): the intention to run a packet or an artifact, with a priority from 1 to 100,
 * an owner and a creator, and an optional override of its jobs' target policies.
 */
import { z } from 'zod'
import { ValidationError } from './errors.ts'
import { failurePolicySchema } from './failure-policy.ts'
import type { FailurePolicyOptions } from './failure-policy.ts'
import type { TargetPolicyOverride } from './model.ts'
import { targetPolicy } from './packet.ts'
import { nameSchema, parseInput } from './schema.ts'

/** The priority of an order that names none. */
export const DEFAULT_PRIORITY = 50

/** The longest a submission waits for offline sites: within any HTTP client's patience. */
export const MAX_WAIT_FOR_SITES_MS = 300_000

/** What users write when they order something. */
export const orderOptionsSchema = z.strictObject({
  /** 1–100, higher first. @default 50 */
  priority: z.number().int().min(1).max(100).optional(),
  /** Defaults to the submitter. */
  owner: nameSchema.optional(),
  /** `any` or a target id for every job, or per job name. */
  override: z
    .strictObject({
      target: nameSchema.optional(),
      jobs: z.record(z.string(), nameSchema).optional(),
    })
    .optional(),
  /** The order's default failure policy, under each job's own. */
  failure: failurePolicySchema.optional(),
  /**
   * Artifacts only: run over the live sites (workers holding the project's data) when some are
   * offline, provided at least this many are live. Without it an order is refused while any
   * site is offline: a federated result never silently covers fewer sites.
   */
  minSites: z.number().int().min(1).max(100_000).optional(),
  /**
   * Artifacts only: while sites are offline, wait up to this long for them before answering
   * (the submission is answered once bound, or refused when the time is up). @default 0
   */
  waitForSitesMs: z.number().int().min(0).max(MAX_WAIT_FOR_SITES_MS).optional(),
})

/** What users write when they order something. */
export type OrderOptions = z.input<typeof orderOptionsSchema>

/** Checked order options. */
export interface ResolvedOrderOptions {
  priority: number
  owner: string | undefined
  override: TargetPolicyOverride | undefined
  failure: FailurePolicyOptions | undefined
  minSites: number | undefined
  waitForSitesMs: number
}

/**
 * Checks order options. `jobNames`, when given, are the names the per-job override may use; an
 * override of a job the order does not have is an error, not a silent no-op.
 */
export function compileOrderOptions(
  input: unknown,
  jobNames?: ReadonlySet<string>,
): ResolvedOrderOptions {
  const raw = parseInput(orderOptionsSchema, input ?? {})
  let override: TargetPolicyOverride | undefined
  if (raw.override !== undefined) {
    override = {}
    if (raw.override.target !== undefined) override.all = targetPolicy(raw.override.target)
    if (raw.override.jobs !== undefined) {
      const jobs: Record<string, ReturnType<typeof targetPolicy>> = {}
      const unknown: string[] = []
      for (const [name, target] of Object.entries(raw.override.jobs)) {
        if (jobNames !== undefined && !jobNames.has(name)) unknown.push(name)
        jobs[name] = targetPolicy(target)
      }
      if (unknown.length > 0) {
        throw new ValidationError(
          unknown.map((name) => ({
            path: `override.jobs.${name}`,
            message: `the order has no job named '${name}'`,
          })),
        )
      }
      override.jobs = jobs
    }
  }
  return {
    priority: raw.priority ?? DEFAULT_PRIORITY,
    owner: raw.owner,
    override,
    failure: raw.failure,
    minSites: raw.minSites,
    waitForSitesMs: raw.waitForSitesMs ?? 0,
  }
}
