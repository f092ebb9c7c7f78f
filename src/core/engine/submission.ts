/**
 * Submission, pure: a packet or an artifact with its order options becomes an order, its jobs
 * and the locks between them. Nothing here starts anything; the engine starts what it returns.
 *
 * Invariant: ids are drawn in the same sequence as before the builders were pure (a packet's
 * order, then its jobs; an artifact's jobs, the artifact, then its order), so the same generator
 * and time give the same ids.
 */
import { bind, toJobGraph } from '../bind.ts'
import type { BindOptions } from '../bind.ts'
import { ValidationError } from '../errors.ts'
import { compileFailurePolicy } from '../failure-policy.ts'
import type { Id, IdGenerator } from '../ids.ts'
import type { Artifact, Job, Lock, Order, SchedulerContext, TargetPolicy } from '../model.ts'
import { compileOrderOptions } from '../order.ts'
import type { ResolvedOrderOptions } from '../order.ts'
import type { Packet } from '../packet.ts'
import { compileArtifact } from '../schema.ts'

/** An order ready to start: its jobs, all waiting, and its locks. */
export interface Submission {
  order: Order
  jobs: Job[]
  locks: Lock[]
  /** For artifacts: how many iterations its `iterate` steps run; 0 for packets. */
  iterations: number
}

/** An order of a stored packet, with the order's target policy override and failure policy. */
export function packetSubmission(
  packetId: Id,
  packet: Packet,
  resolved: ResolvedOrderOptions,
  submitter: string,
  ids: IdGenerator,
  now: number,
): Submission {
  const resources = new Map(packet.resources.map((r) => [r.key, r]))
  const source = { kind: 'packet', packetId, name: packet.name } as const
  const order = newOrder(source, resolved, submitter, ids.next(now), now)
  const jobs = packet.jobs.map((pj) => {
    const job: Job = {
      id: ids.next(now),
      orderId: order.id,
      index: pj.index,
      name: pj.name,
      op: pj.op,
      policy: overridePolicy(resolved, pj.name, pj.policy),
      uses: pj.uses.map((key) => resources.get(key)!),
      failure: compileFailurePolicy(pj.failure, resolved.failure, packet.failure),
      timeoutMs: pj.timeoutMs,
      ...(pj.cacheKey === undefined ? {} : { cacheKey: pj.cacheKey }),
      state: 'waiting',
      attempt: 0,
    }
    return job
  })
  const locks: Lock[] = []
  for (const pj of packet.jobs) {
    for (const a of pj.after) locks.push({ jobId: jobs[a]!.id, nextId: jobs[pj.index]!.id })
  }
  return { order, jobs, locks, iterations: 0 }
}

/**
 * Checks an artifact and the options of its order. An artifact's jobs are bound to the workers
 * that hold its project's data, so its order may not override their target policies.
 */
export function compileArtifactOrder(
  input: unknown,
  options: unknown,
): { artifact: Artifact; resolved: ResolvedOrderOptions } {
  const artifact = compileArtifact(input)
  const resolved = compileOrderOptions(options)
  if (resolved.override !== undefined) {
    throw new ValidationError([
      {
        path: 'override',
        message: "an artifact's jobs are bound to the workers that hold its project's data",
      },
    ])
  }
  return { artifact, resolved }
}

/** An order of an artifact bound over a context; every job takes the order's failure policy. */
export function artifactSubmission(
  artifact: Artifact,
  context: SchedulerContext,
  resolved: ResolvedOrderOptions,
  submitter: string,
  ids: IdGenerator,
  now: number,
  limits?: BindOptions,
): Submission {
  const graph = toJobGraph(bind(artifact, context, limits), ids, now)
  const artifactId = ids.next(now)
  const source = { kind: 'artifact', artifactId, name: artifact.project } as const
  const order = newOrder(source, resolved, submitter, ids.next(now), now)
  const failure = compileFailurePolicy(resolved.failure)
  let iterations = 0
  const jobs = graph.jobs.map((g) => {
    const job: Job = {
      id: g.id,
      orderId: order.id,
      index: g.index,
      name: g.name,
      op: g.op,
      policy: g.policy,
      uses: [],
      failure,
      timeoutMs: g.timeoutMs,
      state: 'waiting',
      attempt: 0,
      step: g.step,
      iteration: g.iteration,
      project: artifact.project,
    }
    iterations = Math.max(iterations, g.iteration + 1)
    return job
  })
  return { order, jobs, locks: graph.locks, iterations }
}

function newOrder(
  source: Order['source'],
  resolved: ResolvedOrderOptions,
  submitter: string,
  id: Id,
  now: number,
): Order {
  return {
    id,
    source,
    priority: resolved.priority,
    owner: resolved.owner ?? submitter,
    creator: submitter,
    override: resolved.override,
    state: 'running',
    createdAt: now,
  }
}

/** The policy of a job after its order's override: per job name first, then for all jobs. */
function overridePolicy(
  resolved: ResolvedOrderOptions,
  name: string,
  policy: TargetPolicy,
): TargetPolicy {
  return resolved.override?.jobs?.[name] ?? resolved.override?.all ?? policy
}
