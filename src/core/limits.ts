/**
 * The limits that bound the work one request can cause: how large an order may bind, how many
 * orders an owner may have in flight, how many event streams a caller may hold open. Each has a
 * default and a server option (`docs/operations.md`); each refusal names the limit and the field.
 */
import { LockstepError, ValidationError } from './errors.ts'

/** What users may configure, every field optional. */
export interface LimitsOptions {
  /** The most jobs one order binds to (an artifact's expansion, a packet's jobs). @default 100_000 */
  maxJobsPerOrder?: number
  /** The most locks (edges between jobs) one order binds to. @default 1_000_000 */
  maxLocksPerOrder?: number
  /** The most resources one packet declares. @default 1_000 */
  maxResourcesPerPacket?: number
  /** The most orders one owner may have running at once. @default 10_000 */
  maxOrdersInFlightPerOwner?: number
  /** The most event streams one caller may hold open. @default 16 */
  maxStreamsPerCaller?: number
}

/** Checked limits. */
export type Limits = Required<LimitsOptions>

export const defaultLimits: Limits = {
  maxJobsPerOrder: 100_000,
  maxLocksPerOrder: 1_000_000,
  maxResourcesPerPacket: 1_000,
  maxOrdersInFlightPerOwner: 10_000,
  maxStreamsPerCaller: 16,
}

/** Checks limits as an operator gives them: each a positive integer. */
export function compileLimits(options: LimitsOptions = {}): Limits {
  const out = { ...defaultLimits }
  for (const key of Object.keys(defaultLimits) as (keyof Limits)[]) {
    const value = options[key]
    if (value === undefined) continue
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new ValidationError([{ path: key, message: 'must be a positive integer' }])
    }
    out[key] = value
  }
  return out
}

/** LIMIT_EXCEEDED (400) for input larger than a limit: names the field and the limit. */
export function limitExceeded(path: string, message: string): ValidationError {
  return new ValidationError([{ path, message }], 'LIMIT_EXCEEDED')
}

/** QUOTA_EXCEEDED (429) for a caller over a quota of things held at once. */
export function quotaExceeded(message: string): LockstepError {
  return new LockstepError('QUOTA_EXCEEDED', message)
}
