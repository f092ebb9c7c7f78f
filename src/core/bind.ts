/**
 * Binding (seeds 000/001): an artifact's steps, over a scheduler context, become numbered jobs
 * joined by locks. Jobs are numbered 0, 1, 2, … step by step, and inside a step in the context's
 * worker order; a step's distribution decides the locks from its last jobs to the next step's
 * first jobs.
 */
import { ValidationError, joinPath } from './errors.ts'
import type { Issue } from './errors.ts'
import type { Id, IdGenerator } from './ids.ts'
import type {
  Artifact,
  BoundJob,
  Distribution,
  Lock,
  Operation,
  SchedulerContext,
  StepSpec,
  TargetPolicy,
} from './model.ts'
import { defaultLimits, limitExceeded } from './limits.ts'
import { compileArtifact, compileContext } from './schema.ts'

/** Limits on what one artifact may expand to. */
export interface BindOptions {
  /** The most jobs one bound artifact may have. @default 100_000 */
  maxJobs?: number
  /** The most locks one bound artifact may have. @default 1_000_000 */
  maxLocks?: number
}

const NOOP: Operation = { builtin: 'noop' }

/** A step that expands into jobs directly (every kind but `iterate`), at one place in the run. */
interface StepInstance {
  step: Exclude<StepSpec, { kind: 'iterate' }>
  path: string
  top: number
  iteration: number
  /** How this instance's last jobs lock the next instance's first jobs. */
  distribution: Distribution | undefined
  /** Where that distribution was written, for error messages. */
  distributionPath: string
}

/**
 * Binds an artifact to a context. Throws a {@link ValidationError} naming the step when a
 * distribution cannot bind the shapes on either side of it, or when the artifact is too large.
 */
export function bind(
  artifact: Artifact,
  context: SchedulerContext,
  options?: BindOptions,
): BoundJob[] {
  const checked = compileArtifact(artifact)
  const ctx = compileContext(context)
  const maxJobs = options?.maxJobs ?? defaultLimits.maxJobsPerOrder
  const n = ctx.workers.length

  const maxLocks = options?.maxLocks ?? defaultLimits.maxLocksPerOrder
  // Measured before anything is built: an iterate of 100,000 rounds over a round-robin is
  // refused in time proportional to the artifact's text, not to what it would bind to.
  const issues: Issue[] = []
  const size = measure(checked.steps, 'steps', n, issues)
  if (issues.length > 0) throw new ValidationError(issues)
  if (size.jobs > maxJobs) {
    throw limitExceeded(
      'steps',
      `binds to ${size.jobs} jobs over ${n} workers; the limit is ${maxJobs} jobs per order`,
    )
  }
  if (size.locks > maxLocks) {
    throw limitExceeded(
      'steps',
      `binds to ${size.locks} locks over ${n} workers; the limit is ${maxLocks} locks per order`,
    )
  }

  const instances: StepInstance[] = []
  flatten(checked.steps, 'steps', undefined, 0, undefined, instances)
  const last = instances[instances.length - 1]!
  if (last.distribution !== undefined) {
    throw new ValidationError([
      {
        path: joinPath(last.distributionPath, 'distribution'),
        message: `'${last.distribution}' has no step after it to bind to`,
      },
    ])
  }

  const jobs: BoundJob[] = []
  const add = (worker: string, op: Operation, at: StepInstance): number => {
    const id = jobs.length
    jobs.push({
      id,
      worker,
      step: at.top,
      iteration: at.iteration,
      locks: [],
      op,
      stepPath: at.path,
      ...(at.step.timeoutMs === undefined ? {} : { timeoutMs: at.step.timeoutMs }),
    })
    return id
  }

  let previous: { last: number[]; at: StepInstance } | undefined
  for (const at of instances) {
    const { first, last: tail } = expand(at, ctx, add, jobs)
    if (previous !== undefined) link(previous.last, first, previous.at, jobs)
    previous = { last: tail, at }
  }
  return jobs
}

/** What a run of steps binds to: its jobs and locks, and how many jobs it starts and ends with. */
interface Size {
  jobs: number
  locks: number
  first: number
  last: number
}

/**
 * The size of what `steps` bind to over `n` workers, without binding them; records a step that
 * needs workers when n is 0. Follows {@link flatten} and {@link link}: an iterate's rounds are
 * joined by its last inner step's distribution, a step to the next by the step's own.
 */
function measure(steps: readonly StepSpec[], path: string, n: number, issues: Issue[]): Size {
  let size: Size | undefined
  let previous: StepSpec | undefined
  steps.forEach((step, i) => {
    const at = `${path}[${i}]`
    const own = measureStep(step, at, n, issues)
    if (size === undefined) size = own
    else {
      size.jobs += own.jobs
      size.locks += own.locks + linkSize(size.last, own.first, previous!.distribution)
      size.last = own.last
    }
    previous = step
  })
  return size ?? { jobs: 0, locks: 0, first: 0, last: 0 }
}

function measureStep(step: StepSpec, at: string, n: number, issues: Issue[]): Size {
  switch (step.kind) {
    case 'initialize':
    case 'finalize':
      return { jobs: 1, locks: 0, first: 1, last: 1 }
    case 'parallel':
    case 'sequential':
    case 'round-robin':
      if (n === 0) {
        issues.push({
          path: at,
          message: `a ${step.kind} step needs at least one worker; the context has none`,
        })
      }
      if (step.kind === 'parallel') return { jobs: n, locks: 0, first: n, last: n }
      if (step.kind === 'sequential') return { jobs: n + 2, locks: n + 1, first: 1, last: 1 }
      return { jobs: n * n, locks: n * (n - 1), first: n, last: n }
    case 'iterate': {
      const inner = measure(step.steps, `${at}.steps`, n, issues)
      const between = linkSize(inner.last, inner.first, step.steps.at(-1)!.distribution)
      const k = step.iterations
      return {
        jobs: k * inner.jobs,
        locks: k * inner.locks + (k - 1) * between,
        first: inner.first,
        last: inner.last,
      }
    }
  }
}

/** How many locks {@link link} adds from `from` jobs to `to` jobs. */
function linkSize(from: number, to: number, distribution: Distribution | undefined): number {
  switch (distribution ?? (from === 1 ? 'distribute' : to === 1 ? 'collect' : 'arrange')) {
    case 'distribute':
      return to
    case 'collect':
    case 'round-robin':
      return from
    case 'arrange':
      return from * to
    case 'none':
      return 0
  }
}

/**
 * Unrolls `iterate` steps into a flat run of step instances. Inside an iterate, the last inner
 * step's distribution binds one iteration to the next; after the last iteration the iterate's
 * own distribution binds it to what follows. `tail` overrides the very last instance's
 * distribution, which is how an enclosing iterate hands its own distribution down.
 */
function flatten(
  steps: readonly StepSpec[],
  path: string,
  top: number | undefined,
  iteration: number,
  tail: { distribution: Distribution | undefined; path: string } | undefined,
  out: StepInstance[],
): void {
  steps.forEach((step, i) => {
    const at = `${path}[${i}]`
    const stepTop = top ?? i
    const isLast = i === steps.length - 1
    const own = { distribution: step.distribution, path: at }
    const outgoing = isLast && tail !== undefined ? tail : own
    if (step.kind !== 'iterate') {
      out.push({
        step,
        path: at,
        top: stepTop,
        iteration,
        distribution: outgoing.distribution,
        distributionPath: outgoing.path,
      })
      return
    }
    for (let t = 0; t < step.iterations; t++) {
      const lastIteration = t === step.iterations - 1
      // The outermost iterate numbers the iterations; inner ones keep their enclosing number.
      const iter = top === undefined ? t : iteration
      flatten(step.steps, `${at}.steps`, stepTop, iter, lastIteration ? outgoing : undefined, out)
    }
  })
}

/** Expands one step instance into jobs and its internal locks; returns its first and last jobs. */
function expand(
  at: StepInstance,
  ctx: SchedulerContext,
  add: (worker: string, op: Operation, at: StepInstance) => number,
  jobs: BoundJob[],
): { first: number[]; last: number[] } {
  const { step } = at
  switch (step.kind) {
    case 'initialize':
    case 'finalize': {
      const id = add(ctx.initiator, step.op, at)
      return { first: [id], last: [id] }
    }
    case 'parallel': {
      const ids = ctx.workers.map((w) => add(w, step.op, at))
      return { first: ids, last: ids }
    }
    case 'sequential': {
      const start = add(ctx.initiator, step.init ?? NOOP, at)
      let prev = start
      for (const w of ctx.workers) {
        const id = add(w, step.op, at)
        jobs[prev]!.locks.push(id)
        prev = id
      }
      const end = add(ctx.initiator, step.final ?? NOOP, at)
      jobs[prev]!.locks.push(end)
      return { first: [start], last: [end] }
    }
    case 'round-robin': {
      const n = ctx.workers.length
      let round: number[] = []
      let first: number[] = []
      for (let r = 0; r < n; r++) {
        const next = ctx.workers.map((w) => add(w, step.op, at))
        if (r === 0) first = next
        else round.forEach((id, i) => jobs[id]!.locks.push(next[(i + 1) % n]!))
        round = next
      }
      return { first, last: round }
    }
  }
}

/** Adds the locks from one step's last jobs to the next step's first jobs. */
function link(from: number[], to: number[], at: StepInstance, jobs: BoundJob[]): void {
  const path = joinPath(at.distributionPath, 'distribution')
  const fail = (message: string): never => {
    throw new ValidationError([{ path, message }])
  }
  let distribution = at.distribution
  if (distribution === undefined) {
    if (from.length === 1) distribution = 'distribute'
    else if (to.length === 1) distribution = 'collect'
    else distribution = 'arrange'
  }
  switch (distribution) {
    case 'distribute':
      if (from.length !== 1) fail(`'distribute' needs one job before it, found ${from.length}`)
      jobs[from[0]!]!.locks.push(...to)
      return
    case 'collect':
      if (to.length !== 1) fail(`'collect' needs one job after it, found ${to.length}`)
      for (const id of from) jobs[id]!.locks.push(to[0]!)
      return
    case 'arrange':
      for (const id of from) jobs[id]!.locks.push(...to)
      return
    case 'round-robin':
      if (from.length !== to.length) {
        fail(
          `'round-robin' needs as many jobs after it as before it, found ${from.length} before and ${to.length} after`,
        )
      }
      from.forEach((id, i) => jobs[id]!.locks.push(to[(i + 1) % to.length]!))
      return
    case 'none':
      return
  }
}

/** A bound job with its identity, ready to be stored with its order. */
export interface GraphJob {
  id: Id
  /** The job's number in the bound artifact. */
  index: number
  /** Unique within the order: the job's number, as text. */
  name: string
  op: Operation
  /** Bound jobs are strict to their worker. */
  policy: TargetPolicy
  step: number
  iteration: number
  stepPath: string
  /** Its step's `timeoutMs`, when it has one. */
  timeoutMs: number | undefined
}

/** A bound artifact as the store keeps it: jobs with UUIDv7 ids, and one row per lock. */
export interface JobGraph {
  jobs: GraphJob[]
  locks: Lock[]
}

/** Gives bound jobs their identities and turns their lock lists into lock rows. */
export function toJobGraph(bound: readonly BoundJob[], ids: IdGenerator, nowMs: number): JobGraph {
  const idOf = bound.map(() => ids.next(nowMs))
  const jobs: GraphJob[] = bound.map((job, i) => ({
    id: idOf[i]!,
    index: job.id,
    name: String(job.id),
    op: job.op,
    policy: { kind: 'strict', target: job.worker },
    step: job.step,
    iteration: job.iteration,
    stepPath: job.stepPath,
    timeoutMs: job.timeoutMs,
  }))
  const locks: Lock[] = []
  for (const job of bound) {
    const jobId = idOf[job.id]!
    for (const next of job.locks) locks.push({ jobId, nextId: idOf[next]! })
  }
  return { jobs, locks }
}
