/**
 * The event log's form of each engine event: what the store keeps and what an event stream
 * sends, live or replayed after a `Last-Event-ID`. A replayed event and the same event heard live
 * are one value, because both come from the log's row through {@link fromLogRow}. The schemas
 * here are the SDK's types too, so a client cannot expect a field the server does not send.
 *
 * The log keeps an event's ids and a compact body: an order's submission keeps its source and
 * the number of its jobs (the jobs are in their own table), an attempt's end keeps its state and
 * reason (the full record is the attempt's TargetFulfilment), a packet's creation its id and name.
 */
import { z } from 'zod'
import type { EngineEvent } from './engine/events.ts'

const event = <T extends string, S extends z.ZodRawShape>(type: T, shape: S) =>
  z.object({ type: z.literal(type), at: z.number().describe('Unix ms'), ...shape })

const orderId = z.string()
const jobId = z.string()
const targetId = z.string()
const ofJob = { orderId, jobId }

/** Every event as the log keeps it, by `type`. */
export const loggedEventSchema = z.discriminatedUnion('type', [
  event('packet:created', { packetId: z.string(), name: z.string() }),
  event('order:submitted', {
    orderId,
    source: z.union([
      z.object({ kind: z.literal('packet'), packetId: z.string(), name: z.string() }),
      z.object({ kind: z.literal('artifact'), artifactId: z.string(), name: z.string() }),
    ]),
    priority: z.number(),
    jobs: z.number().describe('how many jobs the order has'),
  }),
  event('order:succeeded', { orderId }),
  event('order:failed', { orderId, reason: z.string() }),
  event('order:cancelled', { orderId, reason: z.string() }),
  event('job:ready', ofJob),
  event('job:retrying', {
    ...ofJob,
    attempt: z.number(),
    retryAt: z.number(),
    reason: z.string(),
  }),
  event('job:succeeded', {
    ...ofJob,
    attempt: z.number(),
    target: z.string(),
    productId: z.string(),
    cached: z.boolean().optional(),
    kept: z.literal(false).optional(),
  }),
  event('job:failed', { ...ofJob, attempt: z.number(), reason: z.string() }),
  event('job:skipped', { ...ofJob, reason: z.string() }),
  event('job:cancelled', { ...ofJob, reason: z.string() }),
  event('attempt:started', { ...ofJob, attempt: z.number(), target: z.string() }),
  event('attempt:ended', {
    ...ofJob,
    attempt: z.number(),
    target: z.string(),
    state: z.enum(['running', 'succeeded', 'failed', 'cancelled']),
    reason: z.string().optional(),
  }),
  event('attempt:stop', {
    ...ofJob,
    attempt: z.number(),
    target: z.string(),
    reason: z.string(),
  }),
  event('target:registered', {
    targetId,
    kind: z.enum(['worker', 'kubernetes', 'initiator']),
    slots: z.number(),
  }),
  event('target:lost', { targetId }),
  event('target:left', { targetId }),
  event('target:forgotten', { targetId }),
  event('cache:changed', { targetId, added: z.array(z.string()), removed: z.array(z.string()) }),
  event('cache:refused', {
    targetId,
    productIds: z.array(z.string()),
    during: z.enum(['registration', 'heartbeat']),
  }),
])

/** An event as the log keeps it. */
export type LoggedEvent = z.infer<typeof loggedEventSchema>

/** An event of a stream: as the log keeps it, with `seq`, its place in the log. */
export const streamedEventSchema = z.intersection(
  z.object({ seq: z.number().describe('the event’s place in the log: its SSE id') }),
  loggedEventSchema,
)

/** An event of a stream, with its place in the log. */
export type StreamedEvent = z.infer<typeof streamedEventSchema>

/** An engine event in the log's form. */
export function logEntry(e: EngineEvent): LoggedEvent {
  switch (e.type) {
    case 'order:submitted':
      return {
        type: e.type,
        at: e.at,
        orderId: e.order.id,
        source: e.order.source,
        priority: e.order.priority,
        jobs: e.jobs.length,
      }
    case 'packet:created':
      return { type: e.type, at: e.at, packetId: e.packetId, name: e.name }
    case 'target:registered':
      return {
        type: e.type,
        at: e.at,
        targetId: e.target.id,
        kind: e.target.kind,
        slots: e.target.availability,
      }
    case 'attempt:ended': {
      const f = e.fulfilment
      const out: LoggedEvent = {
        type: e.type,
        at: e.at,
        orderId: e.orderId,
        jobId: e.jobId,
        attempt: f.attempt,
        target: f.target,
        state: f.state,
      }
      if (f.reason !== undefined) out.reason = f.reason
      return out
    }
    default:
      return e
  }
}

/** A row of the log as its stream sends it: the ids from their columns, the rest from the body. */
export function fromLogRow(row: {
  seq: number
  at: number
  type: string
  orderId?: string
  jobId?: string
  body: string
}): StreamedEvent {
  const ids: { orderId?: string; jobId?: string } = {}
  if (row.orderId !== undefined) ids.orderId = row.orderId
  if (row.jobId !== undefined) ids.jobId = row.jobId
  // The log holds only what `logEntry` wrote: its body is trusted, not checked again.
  return {
    seq: row.seq,
    type: row.type,
    at: row.at,
    ...ids,
    ...(JSON.parse(row.body) as object),
  } as StreamedEvent
}
