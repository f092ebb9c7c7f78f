/**
 * The worker protocol's wire shapes, defined once: what a target says when it registers, what a
 * worker sends and gets on its heartbeat, and the assignment that carries one attempt. The
 * server validates with these schemas, the OpenAPI document is generated from them, and the
 * client and the worker agent take their types from here, so the two ends cannot drift.
 */
import { z } from 'zod'
import type { ErrorCode } from './errors.ts'
import type { Id } from './ids.ts'
import { isArtefactUrl, MAX_ARTEFACT_LENGTH, MAX_ARTEFACTS } from './job-variables.ts'
import { operationKinds } from './model.ts'
import type { Operation, Resource } from './model.ts'
import { nameSchema } from './schema.ts'

/** An id a target sends back (a job's, a product's): ids Lockstep makes are far shorter. */
const idSchema = z.string().min(1).max(128)

/** The most items of one list in a registration or a heartbeat (attempts, products). */
export const MAX_LIST = 100_000

/** A list of at most {@link MAX_LIST} items. */
const list = <T extends z.ZodType>(item: T) => z.array(item).max(MAX_LIST)

/** One attempt a target runs: the job and the attempt number it was handed. */
export const runningAttemptSchema = z.strictObject({
  jobId: idSchema,
  attempt: z.number().int().min(1),
})

/** An attempt a target runs. */
export type RunningAttempt = z.infer<typeof runningAttemptSchema>

/** What a target reports when an attempt ends. */
export const jobResultSchema = z.strictObject({
  ok: z.boolean(),
  exitCode: z.number().int().optional(),
  reason: z.string().max(200).optional(),
  message: z.string().max(10_000).optional(),
  artefacts: z
    .array(
      z
        .string()
        .refine(isArtefactUrl, `must be a URL of at most ${MAX_ARTEFACT_LENGTH} characters`),
    )
    .max(MAX_ARTEFACTS)
    .optional(),
  productHash: z
    .string()
    .regex(/^[0-9a-f]{64}$/, 'must be a SHA-256 in 64 lowercase hex digits')
    .optional(),
})

/**
 * True for a URL a worker may serve its products at: `http(s)://host[:port]` with an optional
 * path, and no user, query or fragment. The scheduler's relay sends a worker token to this URL,
 * so nothing in it may change where that request goes or what it asks (a user part, a query
 * appended to, a fragment that cuts off the path the relay adds).
 */
export function isWorkerUrl(text: string): boolean {
  if (/[\s\\?#@]/.test(text)) return false
  let url: URL
  try {
    url = new URL(text)
  } catch {
    return false
  }
  return (
    (url.protocol === 'http:' || url.protocol === 'https:') &&
    url.hostname !== '' &&
    url.username === '' &&
    url.password === '' &&
    url.search === '' &&
    url.hash === '' &&
    // What the WHATWG parser quietly repairs (`http:host`, `http:///host`) is refused.
    text.toLowerCase().startsWith(`${url.protocol}//`) &&
    !text.slice(url.protocol.length + 2).startsWith('/')
  )
}

/** What a target says when it registers (or registers again after a restart or a loss). */
export const targetRegistrationSchema = z.strictObject({
  id: nameSchema,
  /** @default 'worker' */
  kind: z.enum(['worker', 'kubernetes']).optional(),
  /** How many jobs it runs at once. @default 1 */
  slots: z.number().int().min(0).max(1_000_000).optional(),
  labels: z
    .record(z.string().min(1).max(63), z.string().max(256))
    .refine((labels) => Object.keys(labels).length <= 64, 'must have at most 64 labels')
    .optional(),
  /** The data projects it holds. */
  projects: z.array(nameSchema).max(10_000).optional(),
  /** Products in its cache. */
  cached: list(idSchema).optional(),
  /**
   * Where it serves its products to peers: `http(s)://host[:port]` with an optional path and
   * nothing else (see {@link isWorkerUrl}).
   */
  url: z
    .string()
    .max(2048)
    .refine(
      isWorkerUrl,
      'must be http(s)://host[:port] with an optional path, and no query, fragment or user',
    )
    .optional(),
  /** Attempts it is still running; any other attempt it was running is lost. */
  running: list(runningAttemptSchema).optional(),
  /**
   * The kinds of operation it runs: a job of another kind is never handed to it.
   * @default ['builtin', 'exec'] for a worker, ['image'] for a Kubernetes target
   */
  runs: z.array(z.enum(operationKinds)).min(1).max(3).optional(),
})

/** What a target says when it registers. */
export type TargetRegistration = z.input<typeof targetRegistrationSchema>

/** What a worker sends on each heartbeat. */
export const heartbeatSchema = z.strictObject({
  /** Results of finished attempts. */
  results: list(
    z.strictObject({
      jobId: idSchema,
      attempt: z.number().int().min(1),
      result: jobResultSchema,
    }),
  ).optional(),
  /**
   * The attempts it runs now. An attempt it does not list, a lease after it started, is lost:
   * the reply that carried it never arrived.
   */
  running: list(runningAttemptSchema).optional(),
  /** Products added to and evicted from its cache. */
  added: list(idSchema).optional(),
  removed: list(idSchema).optional(),
  /** How many more jobs it can take now. @default 0 */
  free: z.number().int().min(0).max(100_000).optional(),
  /**
   * With free slots and nothing to say or hear, wait up to this long for a job before answering
   * (a long poll). @default 0
   */
  waitMs: z.number().int().min(0).max(60_000).optional(),
})

/** What a worker sends on a heartbeat, as it may write it. */
export type HeartbeatInput = z.input<typeof heartbeatSchema>

/** One product a job reads. */
export interface JobInput {
  jobId: Id
  /** The id to fetch it by. */
  productId: string
  name: string
  /** Live targets holding it; empty when none does any more. */
  holders: string[]
  /**
   * What the consumer presents to a peer holding the product (`Authorization: Capability …`):
   * signed by the scheduler for this product and this consumer, and short-lived. Added when the
   * assignment leaves the scheduler; the engine never holds one.
   */
  capability?: string
  /**
   * The SHA-256 of the product as its maker served it; a fetched copy with another hash is
   * refused (`PRODUCT_CORRUPT`). Absent only for a product whose maker reported none.
   */
  hash?: string
}

/** A job handed to a target: everything it needs to run one attempt. */
export interface Assignment {
  orderId: Id
  jobId: Id
  /** The id its product is kept and fetched under. */
  productId: string
  name: string
  attempt: number
  target: string
  op: Operation
  /** The resources the job uses, unique or not: parameters of the run. */
  resources: Resource[]
  /** An attempt running longer than this fails with reason `timeout`. */
  timeoutMs: number | undefined
  /** The products it reads: the jobs whose locks it waited for, and who holds each. */
  inputs: JobInput[]
  step?: number
  iteration?: number
  /** For artifact jobs: the artifact's data project, the only data the job is given. */
  project?: string
}

/** An attempt a target should stop: its order ended, it timed out, or it was cancelled. */
export interface Stop {
  jobId: string
  attempt: number
  reason: string
}

/** A result that was not taken, and why (`STALE_ATTEMPT`: drop it). */
export interface Refusal {
  jobId: string
  attempt: number
  code: ErrorCode
  message: string
}

/** What a worker gets back from a heartbeat. */
export interface HeartbeatReply {
  /** Jobs to start; each start is stored. */
  assignments: Assignment[]
  /** Results that were not taken, and why. */
  refused: Refusal[]
  /** Attempts to stop. */
  stop: Stop[]
}
