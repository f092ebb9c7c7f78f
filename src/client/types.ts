/**
 * What the SDK's calls answer, as the types of the very schemas the server serializes its
 * answers with (`src/core/api.ts`, `src/core/event-log.ts`): a field the server stops sending
 * fails the SDK's typecheck instead of surprising its users.
 */
import type { z } from 'zod'
import type {
  jobDetailSchema,
  jobSchema,
  jobWaitSchema,
  listedJobSchema,
  lockSchema,
  orderDetailSchema,
  orderFulfilmentSchema,
  orderProductsSchema,
  packetCreatedSchema,
  productHoldersSchema,
  targetAttemptSchema,
  targetFulfilmentSchema,
  targetSchema,
  targetStatusSchema,
} from '../core/api.ts'
import type { StreamedEvent } from '../core/event-log.ts'
import type { packetSchema } from '../core/packet.ts'
import type { artifactSchema } from '../core/schema.ts'

/** An order's progress: its state, job counts and times (`GET /v1/orders/:id`'s `fulfilment`). */
export type OrderFulfilment = z.infer<typeof orderFulfilmentSchema>
/** An order and its fulfilment. */
export type OrderDetail = z.infer<typeof orderDetailSchema>
/** One job of an order. */
export type Job = z.infer<typeof jobSchema>
/** A job as its order lists it: with why it waits, and the artefacts its latest attempt reported. */
export type ListedJob = z.infer<typeof listedJobSchema>
/** A job, its attempts, its inputs and why it waits. */
export type JobDetail = z.infer<typeof jobDetailSchema>
/** Why a job has not started: a `kind` with its fields, and `text`, the same in words. */
export type JobWait = z.infer<typeof jobWaitSchema>
/** One attempt of a job on a target (a TargetFulfilment). */
export type TargetFulfilment = z.infer<typeof targetFulfilmentSchema>
/** An attempt on a target, with what runs it there when its driver says (a Pod and its phase). */
export type TargetAttempt = z.infer<typeof targetAttemptSchema>
/** A registered target. */
export type Target = z.infer<typeof targetSchema>
/** A target, whether it is live, and its load. */
export type TargetStatus = z.infer<typeof targetStatusSchema>
/** A lock: when `jobId` succeeds, `nextId` may start. */
export type Lock = z.infer<typeof lockSchema>
/** A product's holders, with the URL each serves it from. */
export type ProductHolders = z.infer<typeof productHoldersSchema>
/** The products of an order's jobs. */
export type OrderProducts = z.infer<typeof orderProductsSchema>
/** A stored packet's id, name and time. */
export type PacketCreated = z.infer<typeof packetCreatedSchema>

/** The order's progress after a change; it carries no `seq` (it is not in the log). */
export interface FulfilmentEvent {
  type: 'fulfilment'
  fulfilment: OrderFulfilment
}

/**
 * One event of an order, as {@link LockstepClient.follow} yields it: a stored event of the log
 * (`order:submitted`, `job:ready`, `attempt:started`, `job:succeeded`, `order:succeeded`, …)
 * with its `seq`, or the order's progress. Narrow it on `type`.
 */
export type OrderEvent = StreamedEvent | FulfilmentEvent

export type { LoggedEvent, StreamedEvent } from '../core/event-log.ts'

/** An artifact as a user writes it: a project and its steps (`artifactSchema`'s input). */
export type ArtifactInput = z.input<typeof artifactSchema>
/** A packet as a user writes it: a name and its jobs (`packetSchema`'s input). */
export type PacketInput = z.input<typeof packetSchema>
export type { OrderOptions } from '../core/order.ts'
