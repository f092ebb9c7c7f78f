/**
 * What callers give the scheduler, and the one check of each: a {@link SchedulerOptions} when it
 * is made, a {@link ScheduleJobOptions} per job. What passes is never checked again inside; what
 * does not is a {@link ValidationError} naming every bad field.
 */
import type { Clock } from '../clock.ts'
import { systemClock } from '../clock.ts'
import { ValidationError } from '../errors.ts'
import type { Issue } from '../errors.ts'
import { operationKinds } from '../model.ts'
import type { OperationKind } from '../model.ts'

/** Options of a {@link Scheduler}. */
export interface SchedulerOptions {
  /** How long a job waits for the workers that hold its product before it widens to its inputs' holders. */
  cacheTimeoutMs: number
  /** How long it then waits for its inputs' holders before it enters the global queue. */
  depsTimeoutMs: number
  /** @default the system clock */
  clock?: Clock
}

/** {@link SchedulerOptions} once checked, with the defaults filled in. */
export interface ResolvedSchedulerOptions {
  cacheTimeoutMs: number
  depsTimeoutMs: number
  clock: Clock
}

export function compileSchedulerOptions(options: SchedulerOptions): ResolvedSchedulerOptions {
  const issues: Issue[] = []
  for (const key of ['cacheTimeoutMs', 'depsTimeoutMs'] as const) {
    const value = options[key]
    if (!Number.isFinite(value) || value < 0) {
      issues.push({
        path: key,
        message: `must be a number of milliseconds ≥ 0, got ${String(value)}`,
      })
    }
  }
  if (issues.length > 0) throw new ValidationError(issues)
  return {
    cacheTimeoutMs: options.cacheTimeoutMs,
    depsTimeoutMs: options.depsTimeoutMs,
    clock: options.clock ?? systemClock,
  }
}

/** A job as given to {@link Scheduler.scheduleJob}. */
export interface ScheduleJobOptions {
  /** The job's id; its product is known by the same id. */
  id: string
  /** The jobs whose products this job reads. */
  deps?: readonly string[]
  /** 1–100, higher first. @default 50 */
  priority?: number
  /** Strict to one target: no other target gets the job. */
  target?: string
  /** Unique resources the job holds while it runs; it starts only when all are free. */
  uses?: readonly string[]
  /** Targets the job should not run on while another live target could (a retry elsewhere). */
  avoid?: readonly string[]
  /**
   * What the job runs: only a target that runs this kind of operation gets it (see
   * `registerWorker`'s `runs`). @default any target may run it
   */
  opKind?: OperationKind
}

/** Checks a job's options and returns its priority; throws a {@link ValidationError} naming each bad field. */
export function checkJob(options: ScheduleJobOptions): number {
  const priority = options.priority ?? 50
  // The common case costs a few comparisons; the full check runs only to report a problem.
  if (
    typeof options.id === 'string' &&
    options.id !== '' &&
    Number.isInteger(priority) &&
    priority >= 1 &&
    priority <= 100 &&
    validList(options.deps) &&
    validList(options.uses) &&
    validList(options.avoid) &&
    (options.opKind === undefined || operationKinds.includes(options.opKind)) &&
    (options.target === undefined || (typeof options.target === 'string' && options.target !== ''))
  ) {
    return priority
  }
  const issues: Issue[] = []
  if (typeof options.id !== 'string' || options.id === '') {
    issues.push({ path: 'id', message: 'must be a non-empty string' })
  }
  if (!Number.isInteger(priority) || priority < 1 || priority > 100) {
    issues.push({
      path: 'priority',
      message: `must be a whole number from 1 to 100, got ${String(priority)}`,
    })
  }
  for (const key of ['deps', 'uses', 'avoid'] as const) {
    const list = options[key]
    if (list === undefined) continue
    if (!Array.isArray(list)) issues.push({ path: key, message: 'must be a list of ids' })
    else {
      list.forEach((v, i) => {
        if (typeof v !== 'string' || v === '') {
          issues.push({ path: `${key}[${i}]`, message: 'must be a non-empty string' })
        }
      })
    }
  }
  if (
    options.target !== undefined &&
    (typeof options.target !== 'string' || options.target === '')
  ) {
    issues.push({ path: 'target', message: 'must be a non-empty string' })
  }
  if (options.opKind !== undefined && !operationKinds.includes(options.opKind)) {
    issues.push({
      path: 'opKind',
      message: `must be one of ${operationKinds.join(', ')}, got ${String(options.opKind)}`,
    })
  }
  throw new ValidationError(issues)
}

function validList(list: readonly string[] | undefined): boolean {
  if (list === undefined) return true
  if (!Array.isArray(list)) return false
  for (let i = 0; i < list.length; i++) {
    const v: unknown = list[i]
    if (typeof v !== 'string' || v === '') return false
  }
  return true
}
