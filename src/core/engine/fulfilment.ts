/**
 * Fulfilment (seed 002): the progress records of an order and of each attempt of its jobs.
 */
import type { Id } from '../ids.ts'
import type { JobResult, JobState, OrderState } from '../model.ts'

/** Counts of an order's jobs by state. */
export type JobCounts = Record<JobState, number>

/** A fresh {@link JobCounts} with every state at 0. */
export function emptyCounts(): JobCounts {
  return {
    waiting: 0,
    ready: 0,
    running: 0,
    succeeded: 0,
    failed: 0,
    skipped: 0,
    cancelled: 0,
  }
}

/** Where an order stands, as the API and the dashboard show it. */
export interface OrderFulfilment {
  orderId: Id
  /** What the order runs: the packet's name or the artifact's project. */
  source: { kind: 'packet' | 'artifact'; name: string }
  state: OrderState
  priority: number
  owner: string
  /** How many jobs the order has. */
  total: number
  counts: JobCounts
  /** The share of jobs in a final state, from 0 to 1. */
  progress: number
  /**
   * For artifacts with `iterate` steps: the lowest iteration (from 0) that still has unfinished
   * jobs, or the last one once every job has ended.
   */
  iteration?: number
  /** For artifacts with `iterate` steps: how many iterations the order runs. */
  iterations?: number
  /** Unix milliseconds. */
  createdAt: number
  /** When the first attempt started. */
  startedAt?: number
  /** When the order reached its final state. */
  endedAt?: number
  /** Why the order failed or was cancelled. */
  reason?: string
}

/** Where an attempt stands: `running` from the moment a target takes it. */
export type AttemptState = 'running' | 'succeeded' | 'failed' | 'cancelled'

/** One attempt of one job on one target (a Pod on Kubernetes). */
export interface TargetFulfilment {
  jobId: Id
  orderId: Id
  /** From 1. */
  attempt: number
  target: string
  state: AttemptState
  /** Every state the attempt has been in, with the Unix milliseconds it entered it. */
  transitions: { state: AttemptState; at: number }[]
  /** Why the attempt failed or was cancelled: `exit-code`, `timeout`, `worker-lost`, … */
  reason?: string
  exitCode?: number
  message?: string
  /** The target holding the product, for a succeeded attempt. */
  product?: string
  /** The SHA-256 of the product the attempt made, as its target reported it. */
  productHash?: string
  /** URLs of artefacts the job reported (seed 002's Result), when it reported any. */
  artefacts?: string[]
}

/** What an {@link OrderFulfilment} is made of, whether the order is in memory or stored. */
export interface FulfilmentParts {
  order: {
    id: Id
    source: { kind: 'packet' | 'artifact'; name: string }
    state: OrderState
    priority: number
    owner: string
    createdAt: number
  }
  total: number
  counts: JobCounts
  startedAt?: number | undefined
  endedAt?: number | undefined
  reason?: string | undefined
  /** How many iterations the order's `iterate` steps run; 0 or 1 without them. */
  iterations: number
  /** The lowest iteration with unfinished jobs; the last one when unknown or all have ended. */
  iteration?: number | undefined
}

/** Builds an order's fulfilment: the one place its shape is made. */
export function orderFulfilment(p: FulfilmentParts): OrderFulfilment {
  const ended = p.total - p.counts.waiting - p.counts.ready - p.counts.running
  const out: OrderFulfilment = {
    orderId: p.order.id,
    source: { kind: p.order.source.kind, name: p.order.source.name },
    state: p.order.state,
    priority: p.order.priority,
    owner: p.order.owner,
    total: p.total,
    counts: { ...p.counts },
    progress: p.total === 0 ? 1 : ended / p.total,
    createdAt: p.order.createdAt,
  }
  if (p.iterations > 1) {
    out.iterations = p.iterations
    out.iteration = p.iteration ?? p.iterations - 1
  }
  if (p.startedAt !== undefined) out.startedAt = p.startedAt
  if (p.endedAt !== undefined) out.endedAt = p.endedAt
  if (p.reason !== undefined) out.reason = p.reason
  return out
}

/** Ends an attempt's record with the state it ended in and what its result says. */
export function endFulfilment(
  current: TargetFulfilment,
  state: AttemptState,
  result: JobResult | undefined,
  at: number,
): void {
  current.state = state
  current.transitions.push({ state, at })
  if (result?.reason !== undefined) current.reason = result.reason
  else if (!(result?.ok ?? true)) current.reason = failureReason(result!)
  if (result?.exitCode !== undefined) current.exitCode = result.exitCode
  if (result?.message !== undefined) current.message = result.message
  // Kept whatever the state: a failed job's artefacts (its logs, a core dump) are what explains it.
  if (result?.artefacts !== undefined && result.artefacts.length > 0) {
    current.artefacts = [...result.artefacts]
  }
  if (state === 'succeeded') {
    current.product = current.target
    if (result?.productHash !== undefined) current.productHash = result.productHash
  }
}

/** A machine-readable reason for a failed result: `exit-code`, `timeout`, `worker-lost`, … */
export function failureReason(result: JobResult): string {
  if (result.reason !== undefined) return result.reason
  if (result.exitCode !== undefined) return 'exit-code'
  return 'failed'
}

/** The reason with its details, for people: `exit-code 3: out of memory`. */
export function describeFailure(result: JobResult): string {
  let out = failureReason(result)
  if (result.exitCode !== undefined) out += ` ${result.exitCode}`
  if (result.message !== undefined) out += `: ${result.message}`
  return out
}
