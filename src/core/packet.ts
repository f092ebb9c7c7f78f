/**
 * Packets (seed 002): reusable, stored graphs of jobs and the resources they use. Each job names
 * the jobs it runs after; a packet is checked for duplicate names, unknown references, cycles and
 * size before it is stored.
 */
import { z } from 'zod'
import { CycleError, ValidationError } from './errors.ts'
import type { Issue } from './errors.ts'
import { failurePolicySchema } from './failure-policy.ts'
import type { FailurePolicyOptions } from './failure-policy.ts'
import { resourceVariable } from './job-variables.ts'
import { defaultLimits, limitExceeded } from './limits.ts'
import type { Limits } from './limits.ts'
import type { Operation, Resource, TargetPolicy } from './model.ts'
import { nameSchema, operationSchema, parseInput, timeoutMsSchema } from './schema.ts'

/** Limits on one packet; a server takes them from its configuration. */
export interface PacketLimits {
  /** @default 100_000 */
  maxJobs: number
  /** The most `after` references in all. @default 1_000_000 */
  maxLocks: number
  /** The most resources one packet declares. @default 1_000 */
  maxResources: number
}

/** The default {@link PacketLimits}. */
export const defaultPacketLimits: PacketLimits = packetLimits(defaultLimits)

/** The packet limits of a server's {@link Limits}. */
export function packetLimits(limits: Limits): PacketLimits {
  return {
    maxJobs: limits.maxJobsPerOrder,
    maxLocks: limits.maxLocksPerOrder,
    maxResources: limits.maxResourcesPerPacket,
  }
}

const resourceSchema = z.strictObject({
  key: nameSchema,
  value: z.string().max(1024),
  unique: z.boolean().optional(),
})

const packetJobSchema = z.strictObject({
  name: nameSchema,
  op: operationSchema,
  after: z.array(nameSchema).optional(),
  /** `any` (the default), or the id of the one target the job must run on. */
  target: nameSchema.optional(),
  uses: z.array(nameSchema).optional(),
  failure: failurePolicySchema.optional(),
  timeoutMs: timeoutMsSchema.optional(),
  /**
   * A cache key: jobs with the same key make the same product. A job whose product a live
   * target already holds succeeds at once without running; jobs with the same key in flight
   * together run once.
   */
  cache: z.string().min(1).max(256).optional(),
})

/** A packet as users write it, in YAML or JSON. */
export const packetSchema = z.strictObject({
  name: nameSchema,
  description: z.string().max(10_000).optional(),
  resources: z.array(resourceSchema).optional(),
  failure: failurePolicySchema.optional(),
  jobs: z.array(packetJobSchema).min(1, 'a packet needs at least one job'),
})

/** What users write for a packet. */
export type PacketOptions = z.input<typeof packetSchema>
/** What users write for one job of a packet. */
export type PacketJobOptions = z.input<typeof packetJobSchema>

/** A job of a checked packet. */
export interface PacketJob {
  /** The job's position in the packet. */
  index: number
  name: string
  op: Operation
  policy: TargetPolicy
  /** The keys of the resources the job uses. */
  uses: string[]
  /** The positions of the jobs it runs after, ascending. */
  after: number[]
  failure: FailurePolicyOptions | undefined
  timeoutMs: number | undefined
  cacheKey: string | undefined
}

/** A checked packet: names unique, references resolved, acyclic, within limits. */
export interface Packet {
  name: string
  description: string | undefined
  resources: Resource[]
  failure: FailurePolicyOptions | undefined
  jobs: PacketJob[]
}

/** The reserved word for "any target". */
export const ANY_TARGET = 'any'

/** Turns a target name as written (`any` or a target id) into a policy. */
export function targetPolicy(target: string | undefined): TargetPolicy {
  return target === undefined || target === ANY_TARGET
    ? { kind: 'any' }
    : { kind: 'strict', target }
}

/** Checks a packet; throws a {@link ValidationError} (or {@link CycleError}) naming each problem's path. */
export function compilePacket(input: unknown, limits: PacketLimits = defaultPacketLimits): Packet {
  if (
    typeof input === 'object' &&
    input !== null &&
    Array.isArray((input as { jobs?: unknown }).jobs) &&
    (input as { jobs: unknown[] }).jobs.length > limits.maxJobs
  ) {
    // Refused before the schema walks every job of an oversized packet.
    throw limitExceeded(
      'jobs',
      `has ${(input as { jobs: unknown[] }).jobs.length} jobs; the limit is ${limits.maxJobs} jobs per order`,
    )
  }
  const raw = parseInput(packetSchema, input)
  const issues: Issue[] = []

  const resources: Resource[] = []
  const resourceKeys = new Set<string>()
  // Each resource reaches its jobs as one environment variable; two keys may not share one.
  const variables = new Map<string, string>()
  ;(raw.resources ?? []).forEach((r, i) => {
    const variable = resourceVariable(r.key)
    const other = variables.get(variable)
    if (resourceKeys.has(r.key)) {
      issues.push({ path: `resources[${i}].key`, message: `resource '${r.key}' is declared twice` })
    } else if (other !== undefined) {
      issues.push({
        path: `resources[${i}].key`,
        message: `resource '${r.key}' and '${other}' would both be ${variable} in a job's environment`,
      })
    }
    variables.set(variable, r.key)
    resourceKeys.add(r.key)
    resources.push({ key: r.key, value: r.value, unique: r.unique ?? false })
  })
  if (resources.length > limits.maxResources) {
    throw limitExceeded(
      'resources',
      `has ${resources.length} resources; the limit is ${limits.maxResources} resources per packet`,
    )
  }

  const indexOf = new Map<string, number>()
  raw.jobs.forEach((job, i) => {
    const seen = indexOf.get(job.name)
    if (seen !== undefined) {
      issues.push({
        path: `jobs[${i}].name`,
        message: `job '${job.name}' is already the name of jobs[${seen}]`,
      })
    } else {
      indexOf.set(job.name, i)
    }
  })

  let lockCount = 0
  const jobs: PacketJob[] = raw.jobs.map((job, i) => {
    const after: number[] = []
    const seenAfter = new Set<number>()
    ;(job.after ?? []).forEach((name, k) => {
      const dep = indexOf.get(name)
      if (dep === undefined) {
        issues.push({ path: `jobs[${i}].after[${k}]`, message: `no job is named '${name}'` })
      } else if (seenAfter.has(dep)) {
        issues.push({ path: `jobs[${i}].after[${k}]`, message: `'${name}' is listed twice` })
      } else {
        seenAfter.add(dep)
        after.push(dep)
      }
    })
    lockCount += after.length
    const uses: string[] = []
    ;(job.uses ?? []).forEach((key, k) => {
      if (!resourceKeys.has(key)) {
        issues.push({
          path: `jobs[${i}].uses[${k}]`,
          message: `no resource '${key}' is declared in resources`,
        })
      } else if (uses.includes(key)) {
        issues.push({ path: `jobs[${i}].uses[${k}]`, message: `'${key}' is listed twice` })
      } else {
        uses.push(key)
      }
    })
    return {
      index: i,
      name: job.name,
      op: job.op,
      policy: targetPolicy(job.target),
      uses,
      after: after.sort((a, b) => a - b),
      failure: job.failure,
      timeoutMs: job.timeoutMs,
      cacheKey: job.cache,
    }
  })
  if (issues.length > 0) throw new ValidationError(issues)
  if (lockCount > limits.maxLocks) {
    throw limitExceeded(
      'jobs',
      `has ${lockCount} 'after' references; the limit is ${limits.maxLocks} locks per order`,
    )
  }

  const cycle = findCycle(jobs)
  if (cycle !== undefined) {
    throw new CycleError(
      `jobs[${cycle[0]!}].after`,
      cycle.map((i) => jobs[i]!.name),
    )
  }
  return {
    name: raw.name,
    description: raw.description,
    resources,
    failure: raw.failure,
    jobs,
  }
}

/**
 * Finds one cycle of `after` references, if there is any, as job positions with the first
 * repeated last (`a → b → a` reads "a runs after b, which runs after a"). Iterative, so deep
 * chains do not overflow the stack.
 */
export function findCycle(jobs: readonly { after: readonly number[] }[]): number[] | undefined {
  const WHITE = 0
  const GREY = 1
  const BLACK = 2
  const color = new Uint8Array(jobs.length)
  const parent = new Int32Array(jobs.length).fill(-1)
  const cursor = new Uint32Array(jobs.length)
  for (let root = 0; root < jobs.length; root++) {
    if (color[root] !== WHITE) continue
    const stack = [root]
    color[root] = GREY
    while (stack.length > 0) {
      const at = stack[stack.length - 1]!
      const deps = jobs[at]!.after
      if (cursor[at]! < deps.length) {
        const next = deps[cursor[at]!++]!
        if (color[next] === WHITE) {
          color[next] = GREY
          parent[next] = at
          stack.push(next)
        } else if (color[next] === GREY) {
          const cycle = [next]
          for (let v = at; v !== next; v = parent[v]!) cycle.push(v)
          cycle.push(next)
          // `cycle` runs against the references; turn it to read along them.
          return cycle.reverse()
        }
      } else {
        color[at] = BLACK
        stack.pop()
      }
    }
  }
  return undefined
}
