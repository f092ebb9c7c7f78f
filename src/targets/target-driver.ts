/**
 * The targets seam. A push target is a place the scheduler hands attempts to: the initiator in
 * this process, a Kubernetes cluster. Each is one {@link TargetDriver}: assignments and stops go
 * in, its free slots and each attempt's outcome come out. The push loop runs the engine's
 * scheduling cycle over every driver's availability; no other layer knows which kind a driver is.
 * Workers are the other kind of target: they pull work through the heartbeat and need no driver.
 */
import type { ServerResponse } from 'node:http'
import type { JobResult } from '../core/model.ts'
import type { Assignment, RunningAttempt, Stop, TargetRegistration } from '../core/protocol.ts'

/** How an attempt ended on a push target, and what its cache gained and lost. */
export interface AttemptOutcome {
  result: JobResult
  added?: readonly string[]
  removed?: readonly string[]
}

/** One push target. */
export interface TargetDriver {
  /** The target's id. */
  readonly id: string
  /**
   * What the push loop registers for it when it starts, or undefined for a target the
   * scheduler knows from the start (the initiator).
   */
  readonly registration: TargetRegistration | undefined
  /** How many more attempts it can take now. */
  availability(): number
  /** Starts one attempt. Resolves with its outcome when it ends; never rejects. */
  start(assignment: Assignment): Promise<AttemptOutcome>
  /** Tells a running attempt to stop; its outcome follows through {@link start}'s promise. */
  stop(stop: Stop): void
  /** Ends what it runs (their outcomes still come) and releases what it holds. */
  close(): Promise<void>
  /**
   * After a scheduler restart: the attempts the store says run on this target. Answers the
   * promise of each one's outcome, in the same order: the driver adopts those it still runs and
   * ends the others with a reason (a Pod that is gone fails as `pod-deleted`). A driver without
   * it keeps nothing across a restart, and such attempts are lost.
   */
  resume?(attempts: readonly RunningAttempt[]): Promise<AttemptOutcome>[]
  /**
   * What runs an attempt on the target and where it stands there, for a person to read (a Pod's
   * name and phase); undefined for an attempt it does not know.
   */
  unit?(attempt: RunningAttempt): AttemptUnit | undefined
  /**
   * The attempt's outcome is stored (or the attempt is no longer current): what the target
   * keeps of it may go. Until then a driver keeps it, so that a scheduler that dies before the
   * outcome is stored finds it again on restart (a Pod is deleted only after this).
   */
  recorded?(attempt: RunningAttempt): void
}

/** What runs one attempt on a push target: a Pod on a cluster. */
export interface AttemptUnit {
  /** Its name on the target, e.g. the Pod's name. */
  name: string
  /** Where it stands there, e.g. the Pod's phase: `Pending`, `Running`, `Succeeded`, … */
  phase: string
}

/** A driver whose target keeps products in this process and serves them over the API. */
export interface ProductSource {
  /** The target holding the products. */
  readonly id: string
  holds(productId: string): boolean
  /** Writes a product to an HTTP response (the caller checked who asks). */
  send(productId: string, res: ServerResponse): Promise<void>
}
