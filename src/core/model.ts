/**
 * Lockstep's domain model. Each word has one meaning, fixed by the glossary in
 * `docs/architecture.md`. Types named `…Options` are what users write; `compile…()` functions
 * check them once and return the `Resolved…` forms the internals use.
 */
import type { Id } from './ids.ts'

/** What a job runs. Exactly one of `builtin`, `exec` or `image`. */
export type Operation =
  /** A built-in operation of the worker agent: `noop`, `count`, `sum`, `mean`, `histogram`, … */
  | { builtin: string; args?: Record<string, unknown> }
  /** A process on a worker, started in a fresh job directory. */
  | { exec: string[]; env?: Record<string, string> }
  /** A container, run as one Pod per attempt on a Kubernetes target. */
  | { image: string; command?: string[]; env?: Record<string, string> }

/** The kinds of {@link Operation}: what a target may declare it runs. */
export const operationKinds = ['builtin', 'exec', 'image'] as const

/** A kind of {@link Operation}. */
export type OperationKind = (typeof operationKinds)[number]

/** The kind of an operation. */
export function operationKind(op: Operation): OperationKind {
  return 'builtin' in op ? 'builtin' : 'exec' in op ? 'exec' : 'image'
}

/**
 * How a step's products reach the next step's first jobs; each defines the locks between them.
 * - `distribute`: the one last job locks every first job of the next step (one → all).
 * - `collect`: every last job locks the one first job of the next step (all → one).
 * - `arrange`: every last job locks every first job of the next step (all → all).
 * - `round-robin`: last job i locks first job (i + 1) mod N; both steps have N jobs.
 * - `none`: no locks; the next step starts without waiting for this one.
 */
export type Distribution = 'distribute' | 'collect' | 'arrange' | 'round-robin' | 'none'

/** The distributions, in the order the docs list them. */
export const distributions: readonly Distribution[] = [
  'distribute',
  'collect',
  'arrange',
  'round-robin',
  'none',
]

/**
 * One stage of an artifact, expanded into jobs over the context's workers.
 * - `initialize`, `finalize`: one job on the initiator.
 * - `parallel`: one job per worker.
 * - `sequential`: initiator → w1 → … → wN → initiator, chained by locks; `init` and `final` are
 *   the initiator's operations at either end (default: `noop`).
 * - `round-robin`: N rounds of N jobs; in round r the job on worker i passes its product to the
 *   job on worker (i + 1) mod N of round r + 1.
 * - `iterate`: the inner steps, `iterations` times over.
 */
export type StepSpec =
  | {
      kind: 'initialize' | 'parallel' | 'finalize' | 'round-robin'
      op: Operation
      /** How this step's products reach the next step. Inferred from the shapes when omitted. */
      distribution?: Distribution
      /** How long each attempt of each of the step's jobs may run, in ms; none when omitted. */
      timeoutMs?: number
    }
  | {
      kind: 'sequential'
      op: Operation
      init?: Operation
      final?: Operation
      distribution?: Distribution
      /** How long each attempt of each of the step's jobs (its ends too) may run, in ms. */
      timeoutMs?: number
    }
  | { kind: 'iterate'; iterations: number; steps: StepSpec[]; distribution?: Distribution }

/** The kinds of step. */
export type StepKind = StepSpec['kind']

/** A submitted workflow: the project whose data it runs on, and its steps in order. */
export interface Artifact {
  /** The data project; the workers that hold its data form the scheduler context. */
  project: string
  steps: StepSpec[]
}

/** The workers valid for an artifact (those holding its project's data), plus the Initiator. */
export interface SchedulerContext {
  /** The target that runs initialization, aggregation and teardown; usually the scheduler. */
  initiator: string
  /** The workers, in the order jobs are numbered over them. */
  workers: string[]
}

/** A job of a bound artifact, numbered 0, 1, 2, … in expansion order. */
export interface BoundJob {
  /** The job's number: step by step, and inside a step in the context's worker order. */
  id: number
  /** The worker (or the initiator) that runs it: bound jobs are strict to their worker. */
  worker: string
  /** The index of the top-level step the job comes from. */
  step: number
  /**
   * The iteration the job belongs to, counted from 0, of the outermost `iterate` around it;
   * 0 outside any `iterate`.
   */
  iteration: number
  /** The jobs that may start once this one has succeeded (its outgoing locks), ascending. */
  locks: number[]
  /** What the job runs. */
  op: Operation
  /** Where the job's step stands in the artifact, e.g. `steps[1].steps[0]`. */
  stepPath: string
  /** Its step's `timeoutMs`: an attempt running longer fails with reason `timeout`. */
  timeoutMs?: number
}

/** A lock row: when job `jobId` succeeds, job `nextId` may start (once all its locks are released). */
export interface Lock {
  jobId: Id
  nextId: Id
}

/** Where a job may run. `strict` pins it to one target; `any` lets dispatch choose. */
export type TargetPolicy = { kind: 'any' } | { kind: 'strict'; target: string }

/** A key/value parameter a job uses. A unique resource is held by one running job at a time. */
export interface Resource {
  key: string
  value: string
  /** @default false */
  unique: boolean
}

/** What happens when a job's attempts are used up. */
export type OnExhausted = 'fail-order' | 'continue'

/** A job's failure policy, as resolved from its options and its order's defaults. */
export interface FailurePolicy {
  /** Attempts in all, the first included. @default 1 */
  attempts: number
  /** The wait before the second attempt. @default 1000 */
  backoffMs: number
  /** Each further wait is this many times the one before. @default 2 */
  backoffFactor: number
  /** No wait is longer than this. @default 60000 */
  maxBackoffMs: number
  /** A wait varies at random by up to this fraction either way. @default 0.2 */
  jitter: number
  /** A retry avoids the targets where earlier attempts failed, while others can run it. @default false */
  otherTarget: boolean
  /** `fail-order` ends the order; `continue` skips only the failed job's dependents. @default 'fail-order' */
  onExhausted: OnExhausted
}

/** How an attempt ended. */
export interface JobResult {
  ok: boolean
  /** The exit code of an `exec` or `image` operation. */
  exitCode?: number
  /** A machine-readable reason for a failure: `exit-code`, `timeout`, `output-too-large`, `worker-lost`, `cancelled`, … */
  reason?: string
  /** Words for a person. */
  message?: string
  /** URLs of artefacts the job published beside its product. */
  artefacts?: string[]
  /**
   * For a success: the SHA-256 (64 lowercase hex digits) of the product as its target serves
   * it, the archive of its directory. Consumers check what they fetch against it.
   */
  productHash?: string
}

/** Where a job stands. `waiting`: some lock into it is held; `ready`: queued for dispatch. */
export type JobState =
  'waiting' | 'ready' | 'running' | 'succeeded' | 'failed' | 'skipped' | 'cancelled'

/** The states a job does not leave. */
export const finalJobStates: ReadonlySet<JobState> = new Set([
  'succeeded',
  'failed',
  'skipped',
  'cancelled',
])

/** One unit of execution in an order. */
export interface Job {
  id: Id
  orderId: Id
  /** The job's position in its packet, or its number in its bound artifact. */
  index: number
  /** Unique within the order. */
  name: string
  op: Operation
  /** Where the job may run, after the order's override. */
  policy: TargetPolicy
  /** The resources it uses. */
  uses: Resource[]
  failure: FailurePolicy
  /** An attempt running longer than this fails with reason `timeout`. */
  timeoutMs: number | undefined
  state: JobState
  /** The current attempt's number, from 1; 0 before the first. */
  attempt: number
  /** For artifact jobs: the top-level step and the iteration. */
  step?: number
  iteration?: number
  /**
   * For artifact jobs: the artifact's data project, the only data the job may read.
   */
  project?: string
  /** Why the job failed, was skipped or was cancelled, e.g. `exit-code 2: no input`. */
  reason?: string
  /** While the job backs off before a retry: when the retry becomes ready (Unix milliseconds). */
  retryAt?: number
  /** Jobs with the same cache key make the same product (see {@link productOf}). */
  cacheKey?: string
}

/**
 * Whether a job's success leaves a product for the jobs after it, for downloads and for the
 * order's final products. An `image` job runs in a Pod, which keeps nothing once it is gone: it
 * publishes artefacts instead.
 */
export function leavesProduct(job: Pick<Job, 'op'>): boolean {
  return operationKind(job.op) !== 'image'
}

/** The id of the product a job makes: its cache key's product, or one of its own. */
export function productOf(job: Pick<Job, 'id' | 'cacheKey'>): string {
  return job.cacheKey === undefined ? job.id : `cache:${job.cacheKey}`
}

/** Replaces the target policy of an order's jobs: of all of them, or of some by name. */
export interface TargetPolicyOverride {
  all?: TargetPolicy
  jobs?: Record<string, TargetPolicy>
}

/** Where an order stands. */
export type OrderState = 'running' | 'succeeded' | 'failed' | 'cancelled'

/** One run of a packet or of a bound artifact. */
export interface Order {
  id: Id
  /**
   * What the order runs, with its name: the packet's name or the artifact's project (what the
   * dashboard shows and `GET /v1/orders?q=` searches).
   */
  source:
    | { kind: 'packet'; packetId: Id; name: string }
    | { kind: 'artifact'; artifactId: Id; name: string }
  /** 1–100; higher runs first. @default 50 */
  priority: number
  /** Who the order belongs to: only the owner (or an admin) may cancel it. */
  owner: string
  /** Who submitted it, when someone submits on the owner's behalf. */
  creator: string
  override: TargetPolicyOverride | undefined
  state: OrderState
  /** Unix milliseconds. */
  createdAt: number
  /** For an artifact's order: the sites it was bound over, and those that were offline. */
  sites?: OrderSites
}

/**
 * The context an artifact's order was bound over: the workers holding its project's data that
 * were live (its jobs run there), those registered but offline, and the `minSites` that let it
 * run without them. A federated result never covers fewer sites than this says.
 */
export interface OrderSites {
  bound: string[]
  offline: string[]
  minSites?: number
}

/** The kinds of target: workers pull jobs, Kubernetes clusters get Pods pushed to them. */
export type TargetKind = 'worker' | 'kubernetes' | 'initiator'

/** A place jobs run. */
export interface Target {
  id: string
  kind: TargetKind
  /** Free slots. */
  availability: number
  /** Free-form labels, e.g. `{ zone: 'eu' }`. */
  labels: Record<string, string>
  /** The data projects the target holds (workers only). */
  projects: string[]
  /** Where the target serves its products to peers, e.g. `http://10.0.0.7:7301`. */
  url?: string
  /** The kinds of operation it said it runs; its kind's default when it did not say. */
  runs?: OperationKind[]
}
