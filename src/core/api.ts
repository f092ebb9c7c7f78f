/**
 * The API's answers as schemas: what each route returns. The server serializes every answer
 * through its route's schema and the OpenAPI document is generated from the same schemas, so the
 * document cannot promise a field the server does not send. Each schema has the keys of the
 * domain type it describes, checked at compile time: a field added to `Job` and forgotten here
 * fails the typecheck instead of vanishing from the answers.
 */
import { z } from 'zod'
import { errorCatalogue } from './errors.ts'
import type { ErrorCode } from './errors.ts'
import type { OrderFulfilment, TargetFulfilment } from './engine/fulfilment.ts'
import { operationKinds } from './model.ts'
import type { Job, Lock, Order, Target } from './model.ts'
import type { Assignment, JobInput } from './protocol.ts'
import { jobResultSchema, runningAttemptSchema } from './protocol.ts'

const operation = z.union([
  z.object({ builtin: z.string(), args: z.record(z.string(), z.unknown()).optional() }),
  z.object({ exec: z.array(z.string()), env: z.record(z.string(), z.string()).optional() }),
  z.object({
    image: z.string(),
    command: z.array(z.string()).optional(),
    env: z.record(z.string(), z.string()).optional(),
  }),
])

const targetPolicy = z.union([
  z.object({ kind: z.literal('any') }),
  z.object({ kind: z.literal('strict'), target: z.string() }),
])

const resource = z.object({ key: z.string(), value: z.string(), unique: z.boolean() })

const jobState = z.enum([
  'waiting',
  'ready',
  'running',
  'succeeded',
  'failed',
  'skipped',
  'cancelled',
])
const orderState = z.enum(['running', 'succeeded', 'failed', 'cancelled'])

export const jobSchema = z.object({
  id: z.string(),
  orderId: z.string(),
  index: z.number(),
  name: z.string(),
  op: operation,
  policy: targetPolicy,
  uses: z.array(resource),
  failure: z.object({
    attempts: z.number(),
    backoffMs: z.number(),
    backoffFactor: z.number(),
    maxBackoffMs: z.number(),
    jitter: z.number(),
    otherTarget: z.boolean(),
    onExhausted: z.enum(['fail-order', 'continue']),
  }),
  timeoutMs: z.number().optional(),
  state: jobState,
  attempt: z.number(),
  step: z.number().optional(),
  iteration: z.number().optional(),
  project: z.string().optional(),
  reason: z.string().optional(),
  retryAt: z.number().optional(),
  cacheKey: z.string().optional(),
})

/** A lock: when job `jobId` succeeds, job `nextId` may start (once its other locks are released). */
export const lockSchema = z.object({ jobId: z.string(), nextId: z.string() })

export const orderSchema = z.object({
  id: z.string(),
  source: z.union([
    z.object({ kind: z.literal('packet'), packetId: z.string(), name: z.string() }),
    z.object({ kind: z.literal('artifact'), artifactId: z.string(), name: z.string() }),
  ]),
  priority: z.number(),
  owner: z.string(),
  creator: z.string(),
  override: z
    .object({ all: targetPolicy.optional(), jobs: z.record(z.string(), targetPolicy).optional() })
    .optional(),
  state: orderState,
  createdAt: z.number(),
  sites: z
    .object({
      bound: z.array(z.string()),
      offline: z.array(z.string()),
      minSites: z.number().optional(),
    })
    .optional(),
})

const counts = z.object({
  waiting: z.number(),
  ready: z.number(),
  running: z.number(),
  succeeded: z.number(),
  failed: z.number(),
  skipped: z.number(),
  cancelled: z.number(),
})

export const orderFulfilmentSchema = z.object({
  orderId: z.string(),
  /** What the order runs: the packet's name or the artifact's project. */
  source: z.object({ kind: z.enum(['packet', 'artifact']), name: z.string() }),
  state: orderState,
  priority: z.number(),
  owner: z.string(),
  total: z.number(),
  counts,
  progress: z.number(),
  iteration: z.number().optional(),
  iterations: z.number().optional(),
  createdAt: z.number(),
  startedAt: z.number().optional(),
  endedAt: z.number().optional(),
  reason: z.string().optional(),
})

const attemptState = z.enum(['running', 'succeeded', 'failed', 'cancelled'])

export const targetFulfilmentSchema = z.object({
  jobId: z.string(),
  orderId: z.string(),
  attempt: z.number(),
  target: z.string(),
  state: attemptState,
  transitions: z.array(z.object({ state: attemptState, at: z.number() })),
  reason: z.string().optional(),
  exitCode: z.number().optional(),
  message: z.string().optional(),
  product: z.string().optional(),
  productHash: z.string().optional(),
  artefacts: z.array(z.string()).optional(),
})

/**
 * One attempt on a target, as `GET /v1/targets/:id/fulfilments` lists it: its TargetFulfilment,
 * and for a push target whose driver knows it, what runs it there (a Pod's name and phase).
 */
export const targetAttemptSchema = targetFulfilmentSchema.extend({
  unit: z.object({ name: z.string(), phase: z.string() }).optional(),
})

export const targetSchema = z.object({
  id: z.string(),
  kind: z.enum(['worker', 'kubernetes', 'initiator']),
  availability: z.number(),
  labels: z.record(z.string(), z.string()),
  projects: z.array(z.string()),
  url: z.string().optional(),
  runs: z.array(z.enum(['builtin', 'exec', 'image'])).optional(),
})

export const targetStatusSchema = z.object({
  target: targetSchema,
  live: z.boolean(),
  running: z.number(),
  /** Jobs in its first local queue (it holds their product) and its second (it holds an input). */
  queues: z.object({ firstLocal: z.number(), secondLocal: z.number() }),
  /** When it last heartbeated (workers only), in Unix milliseconds. */
  lastHeartbeatAt: z.number().optional(),
  problem: z.string().optional(),
})

/** `GET /v1/stats`: the numbers the metrics show, with the global queue's depth. */
export const statsSchema = z.object({
  jobs: counts.describe('jobs of the orders in flight, by state'),
  queues: z.object({
    global: z.number().describe('jobs in the global queue'),
    waiting: z.number().describe('jobs ready and waiting in any queue (lockstep_queue_depth)'),
  }),
  orders: z.number().describe('orders in flight'),
  targets: z.number().describe('targets connected now'),
})

/** `GET /v1/stats/history`: one point per interval, oldest first. */
export const statsHistorySchema = z.array(
  z.object({
    at: z.number().describe('end of the interval, Unix ms'),
    jobs: z.object({ running: z.number(), ready: z.number(), waiting: z.number() }),
    succeededPerS: z.number(),
    failedPerS: z.number(),
    commitMs: z
      .number()
      .nullable()
      .describe('median group-commit time over the interval; null when nothing was committed'),
  }),
)

/** A wait reason's fields, and `text`: the reason in words (`describeJobWait`). */
const worded = <T extends z.ZodRawShape>(shape: T) =>
  z.object({ ...shape, text: z.string().describe('why the job waits, in words') })

/** Why a job has not started, as data and in words: the API, the CLI and the dashboard show it. */
export const jobWaitSchema = z.union([
  worded({ kind: z.literal('locks'), waitingFor: z.array(z.string()) }),
  worded({ kind: z.literal('backoff'), until: z.number() }),
  worded({ kind: z.literal('same-product'), job: z.string() }),
  worded({
    kind: z.literal('locality'),
    stage: z.enum(['cached', 'deps']),
    preferred: z.array(z.string()),
    until: z.number(),
  }),
  worded({ kind: z.literal('resource'), resource: z.string(), holder: z.string() }),
  worded({
    kind: z.literal('no-eligible-target'),
    target: z.string().optional(),
    op: z.enum(operationKinds).optional(),
    refusal: z.string().optional(),
  }),
  worded({
    kind: z.literal('queued'),
    targets: z.union([z.literal('any'), z.array(z.string())]),
  }),
])

export const listedJobSchema = jobSchema.extend({
  wait: jobWaitSchema.optional(),
  /** The artefacts the job's latest attempt reported. */
  artefacts: z.array(z.string()).optional(),
})

const jobInput = z.object({
  jobId: z.string(),
  productId: z.string(),
  name: z.string(),
  holders: z.array(z.string()),
  capability: z.string().optional(),
  hash: z.string().optional(),
})

export const jobDetailSchema = z.object({
  job: jobSchema,
  attempts: z.array(targetFulfilmentSchema),
  inputs: z.array(jobInput),
  wait: jobWaitSchema.optional(),
})

export const assignmentSchema = z.object({
  orderId: z.string(),
  jobId: z.string(),
  productId: z.string(),
  name: z.string(),
  attempt: z.number(),
  target: z.string(),
  op: operation,
  resources: z.array(resource),
  timeoutMs: z.number().optional(),
  inputs: z.array(jobInput),
  step: z.number().optional(),
  iteration: z.number().optional(),
  project: z.string().optional(),
})

const errorCode = z.enum(Object.keys(errorCatalogue) as [ErrorCode, ...ErrorCode[]])

/** The public half of the scheduler's capability key: workers check capabilities with it. */
export const capabilityKeySchema = z.object({
  kid: z.string(),
  publicKey: z.string(),
})

export const heartbeatReplySchema = z.object({
  assignments: z.array(assignmentSchema),
  refused: z.array(runningAttemptSchema.extend({ code: errorCode, message: z.string() })),
  stop: z.array(runningAttemptSchema.extend({ reason: z.string() })),
})

const holder = z.object({ target: z.string(), url: z.string().optional() })

export const productHoldersSchema = z.object({
  productId: z.string(),
  holders: z.array(holder),
})

export const orderProductsSchema = z.array(
  z.object({
    jobId: z.string(),
    productId: z.string(),
    name: z.string(),
    holders: z.array(holder),
  }),
)

export const packetCreatedSchema = z.object({
  id: z.string(),
  name: z.string(),
  createdAt: z.number(),
})

export const orderDetailSchema = z.object({ order: orderSchema, fulfilment: orderFulfilmentSchema })

/** Every error: its code from the catalogue, words for people, and the paths of bad fields. */
export const errorSchema = z.object({
  error: z.object({
    code: errorCode,
    message: z.string(),
    issues: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
    id: z.string().optional(),
  }),
})

export { jobResultSchema }

// ---- each schema has the keys of its domain type ----

type SameKeys<A, B> = [Exclude<keyof A, keyof B> | Exclude<keyof B, keyof A>] extends [never]
  ? true
  : [Exclude<keyof A, keyof B> | Exclude<keyof B, keyof A>]

const _keys: [
  SameKeys<z.output<typeof jobSchema>, Job>,
  SameKeys<z.output<typeof orderSchema>, Order>,
  SameKeys<z.output<typeof orderFulfilmentSchema>, OrderFulfilment>,
  SameKeys<z.output<typeof targetFulfilmentSchema>, TargetFulfilment>,
  SameKeys<z.output<typeof targetSchema>, Target>,
  SameKeys<z.output<typeof assignmentSchema>, Assignment>,
  SameKeys<z.output<typeof jobInput>, JobInput>,
  SameKeys<z.output<typeof lockSchema>, Lock>,
] = [true, true, true, true, true, true, true, true]
void _keys
