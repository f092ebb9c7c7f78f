/**
 * The engine's one event stream: a typed `noun:verb` event for every transition. The store
 * persists them, the API streams them, the dashboard draws them.
 */
import type { Clock } from '../clock.ts'
import type { Id } from '../ids.ts'
import type { Artifact, Job, Lock, Order, Target } from '../model.ts'
import type { Packet } from '../packet.ts'
import type { TargetFulfilment } from './fulfilment.ts'
import type { AnnouncementRefusal } from './product-ledger.ts'

/** Every event, by type. Each also carries `type` and `at` (Unix milliseconds). */
export interface EngineEventMap {
  'packet:created': { packetId: Id; name: string; packet: Packet }
  /**
   * An order with all its jobs and locks, as the store keeps them; for an artifact, the
   * artifact too and how many iterations it runs.
   */
  'order:submitted': {
    order: Order
    jobs: Job[]
    locks: Lock[]
    iterations: number
    artifact?: Artifact
  }
  'order:succeeded': { orderId: Id }
  'order:failed': { orderId: Id; reason: string }
  'order:cancelled': { orderId: Id; reason: string }
  /** Every lock into the job is released: it is queued for dispatch. */
  'job:ready': { orderId: Id; jobId: Id }
  /** An attempt failed and another follows at `retryAt`. */
  'job:retrying': { orderId: Id; jobId: Id; attempt: number; retryAt: number; reason: string }
  /**
   * `productId` is where its product is kept; `cached` when a live target already held it, so
   * the job did not run.
   */
  'job:succeeded': {
    orderId: Id
    jobId: Id
    attempt: number
    target: string
    productId: string
    cached?: boolean
    /** False when the job leaves no product (an `image` job: its Pod keeps nothing). */
    kept?: false
  }
  'job:failed': { orderId: Id; jobId: Id; attempt: number; reason: string }
  /** A job that can no longer run because a job it waits for failed or was cancelled. */
  'job:skipped': { orderId: Id; jobId: Id; reason: string }
  'job:cancelled': { orderId: Id; jobId: Id; reason: string }
  'attempt:started': { orderId: Id; jobId: Id; attempt: number; target: string }
  /** An attempt ended; `fulfilment` is its full record. */
  'attempt:ended': { orderId: Id; jobId: Id; fulfilment: TargetFulfilment }
  /** The target should stop running this attempt (its order ended, it timed out, or it was cancelled). */
  'attempt:stop': { orderId: Id; jobId: Id; attempt: number; target: string; reason: string }
  'target:registered': { target: Target }
  /** A worker stopped heartbeating past its lease. */
  'target:lost': { targetId: string }
  /** A worker said goodbye. */
  'target:left': { targetId: string }
  /** An operator forgot a target that was not live: it is no longer a site of its projects. */
  'target:forgotten': { targetId: string }
  /** Products a target gained or lost from its cache. */
  'cache:changed': { targetId: string; added: string[]; removed: string[] }
  /**
   * Products a target announced but was not believed to hold (it neither made them, nor holds
   * them by the store, nor was sent to fetch them): ignored, and recorded in the event log.
   */
  'cache:refused': { targetId: string; productIds: string[]; during: AnnouncementRefusal }
}

/** The name of an event. */
export type EngineEventType = keyof EngineEventMap

/** One event of the stream. */
export type EngineEvent = {
  [K in EngineEventType]: { type: K; at: number } & EngineEventMap[K]
}[EngineEventType]

/** Receives every event, in order, synchronously with the transition. */
export type EngineListener = (event: EngineEvent) => void

/** The listeners of one engine, and the one way its parts emit to them. */
export class EngineEvents {
  private readonly listeners: EngineListener[] = []
  private readonly clock: Clock

  constructor(clock: Clock) {
    this.clock = clock
  }

  /** Listens to every event; returns a function that stops listening. */
  on(listener: EngineListener): () => void {
    this.listeners.push(listener)
    return () => {
      const i = this.listeners.indexOf(listener)
      if (i >= 0) this.listeners.splice(i, 1)
    }
  }

  /** Emits an event to every listener, synchronously, in registration order. */
  emit<K extends EngineEventType>(type: K, body: EngineEventMap[K]): void {
    if (this.listeners.length === 0) return
    const event = { type, at: this.clock.now(), ...body } as EngineEvent
    for (const listener of this.listeners) listener(event)
  }
}
