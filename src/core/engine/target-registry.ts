/**
 * The targets an engine knows: what each is, what it can do, whether it is live, its lease, and
 * the attempts it runs. It knows no kind of target: what a target can do is data given when it
 * registers ({@link TargetCapabilities}), so the initiator, a worker and a Kubernetes cluster are
 * one thing to it.
 *
 * Invariants: a target that is not live runs nothing, and {@link TargetRegistry.live} never
 * hands it out; a target with a lease that stays silent past it is lost, and every attempt it
 * ran is lost with it.
 */
import type { Clock, Timer } from '../clock.ts'
import { LockstepError } from '../errors.ts'
import type { Id } from '../ids.ts'
import type { OperationKind, Target } from '../model.ts'
import type { RunningAttempt, Stop } from '../protocol.ts'
import type { TargetFulfilment } from './fulfilment.ts'

/** What a target can do, given when it registers; asked instead of its kind. */
export interface TargetCapabilities {
  /** A target silent this long is lost; 0: it holds no lease (it is pushed to, or in-process). */
  leaseMs: number
  /** It takes only the jobs strict to it, never a flexible one (the initiator). */
  strictOnly: boolean
  /** Artifacts bind jobs to it over the data projects it holds (workers). */
  holdsData: boolean
  /**
   * The kinds of operation it runs; a job of another kind never reaches it. Registrations always
   * say (`capabilitiesOf`). @default every kind
   */
  runs?: readonly OperationKind[]
  /** Why it runs no other kinds, and how to change that, for a waiting job's reason. */
  refusal?: string
}

/** What the registry needs of a running attempt: its job, and the attempt's record. */
export interface RunningJob {
  readonly job: { readonly id: Id; readonly attempt: number }
  readonly current: TargetFulfilment | undefined
}

/** A registered target. `J` is what the engine keeps of a running attempt. */
export interface TargetRecord<J> {
  target: Target
  capabilities: TargetCapabilities
  live: boolean
  leaseDue: number
  leaseTimer: Timer | undefined
  /** When it last heartbeated (workers only): Unix milliseconds. */
  heartbeatAt?: number
  /** Running attempts, by job id. */
  readonly running: Map<Id, J>
  /** Attempts it must stop, kept until it next speaks (targets with a lease only). */
  stops: Stop[]
}

/** A registered target as {@link TargetRegistry.targets} lists it. */
export interface RegisteredTarget {
  target: Target
  live: boolean
  /** Attempts it runs now. */
  running: number
  /** When it last heartbeated (workers only), in Unix milliseconds. */
  lastHeartbeatAt?: number
}

/** What the registry tells its owner, synchronously, as it happens. */
export interface TargetHooks<J> {
  /** A target is live, for the first time or again. */
  joined(record: TargetRecord<J>): void
  /** A target is no longer live: its lease ran out, or it left. Its attempts are lost next. */
  gone(record: TargetRecord<J>, event: 'target:lost' | 'target:left'): void
  /** An attempt is lost: its target is gone, or restarted without it. */
  lost(job: J, why: string): void
  /** A live target does not run an attempt handed to it a while ago: it never arrived. */
  undelivered(job: J, targetId: string): void
}

/** The registered targets, by id, with their leases. */
export class TargetRegistry<J extends RunningJob> {
  private readonly records = new Map<string, TargetRecord<J>>()
  private readonly clock: Clock
  private readonly hooks: TargetHooks<J>
  private stopped = false

  constructor(clock: Clock, hooks: TargetHooks<J>) {
    this.clock = clock
    this.hooks = hooks
  }

  /** Registers a target, or registers it again: it is live, and its lease starts over. */
  register(target: Target, capabilities: TargetCapabilities): TargetRecord<J> {
    let record = this.records.get(target.id)
    if (record === undefined) {
      record = {
        target,
        capabilities,
        live: true,
        leaseDue: 0,
        leaseTimer: undefined,
        running: new Map(),
        stops: [],
      }
      this.records.set(target.id, record)
    } else {
      record.target = target
      record.capabilities = capabilities
      record.live = true
    }
    this.hooks.joined(record)
    const leaseMs = capabilities.leaseMs
    if (leaseMs > 0) {
      record.leaseDue = this.clock.now() + leaseMs
      if (record.leaseTimer === undefined) this.armLease(record, leaseMs)
    }
    return record
  }

  /**
   * Knows the targets stored before a restart: a live one is registered again, so its lease
   * starts over (a grace period to heartbeat); any other is known, and live once it registers.
   */
  restore(
    stored: readonly { target: Target; live: boolean }[],
    capabilitiesOf: (target: Target) => TargetCapabilities,
  ): void {
    for (const { target, live } of stored) {
      const capabilities = capabilitiesOf(target)
      if (live) this.register(target, capabilities)
      else {
        this.records.set(target.id, {
          target,
          capabilities,
          live: false,
          leaseDue: 0,
          leaseTimer: undefined,
          running: new Map(),
          stops: [],
        })
      }
    }
  }

  /** A target registered again after a restart: every attempt it no longer runs is lost. */
  restarted(record: TargetRecord<J>, running: readonly RunningAttempt[]): void {
    const still = attemptKeys(running)
    for (const job of [...record.running.values()]) {
      if (!still.has(`${job.job.id}#${job.job.attempt}`)) {
        this.hooks.lost(job, `${record.target.id} restarted without it`)
      }
    }
  }

  /**
   * Renews a target's lease: its due time only, the timer catches up when it fires. With the
   * attempts it runs, an attempt it does not list is undelivered once it had `graceMs` to arrive:
   * the reply that carried it may never have reached the target.
   */
  heartbeat(
    record: TargetRecord<J>,
    running: readonly RunningAttempt[] | undefined,
    graceMs: number,
  ): void {
    const now = this.clock.now()
    record.heartbeatAt = now
    if (record.capabilities.leaseMs > 0) record.leaseDue = now + record.capabilities.leaseMs
    if (running === undefined) return
    const held = attemptKeys(running)
    for (const job of [...record.running.values()]) {
      const current = job.current!
      const started = current.transitions[0]!.at
      if (!held.has(`${job.job.id}#${current.attempt}`) && now - started >= graceMs) {
        this.hooks.undelivered(job, record.target.id)
      }
    }
  }

  /** The attempts a live target must stop, told once: they are gone from it once taken. */
  takeStops(record: TargetRecord<J>): Stop[] {
    const stops = record.stops
    if (stops.length > 0) record.stops = []
    return stops
  }

  /** A target leaves: it is no longer live, and its running attempts are lost. */
  remove(record: TargetRecord<J>): void {
    this.drop(record, 'target:left', `${record.target.id} left`)
  }

  get(targetId: string): TargetRecord<J> | undefined {
    return this.records.get(targetId)
  }

  isLive(targetId: string): boolean {
    return this.records.get(targetId)?.live === true
  }

  /** A live target; TARGET_NOT_FOUND for one unknown or lost. */
  live(targetId: string): TargetRecord<J> {
    const record = this.records.get(targetId)
    if (record === undefined || !record.live) {
      throw new LockstepError(
        'TARGET_NOT_FOUND',
        record === undefined
          ? `no target is registered as '${targetId}'`
          : `target '${targetId}' was lost; register it again`,
      )
    }
    return record
  }

  /** A registered target. */
  target(targetId: string): Target | undefined {
    return this.records.get(targetId)?.target
  }

  /** Every registered target: whether it is live, how many attempts it runs, its last heartbeat. */
  targets(): RegisteredTarget[] {
    return [...this.records.values()].map((r) => {
      const out: RegisteredTarget = { target: r.target, live: r.live, running: r.running.size }
      if (r.heartbeatAt !== undefined) out.lastHeartbeatAt = r.heartbeatAt
      return out
    })
  }

  /** Says where a target serves its products; an unknown target is ignored. */
  setTargetUrl(targetId: string, url: string): void {
    const record = this.records.get(targetId)
    if (record !== undefined) record.target.url = url
  }

  /** The targets holding a project's data, live and not, each in id order. */
  sitesOf(project: string): { live: string[]; offline: string[] } {
    const live: string[] = []
    const offline: string[] = []
    for (const r of this.records.values()) {
      if (r.capabilities.holdsData && r.target.projects.includes(project)) {
        ;(r.live ? live : offline).push(r.target.id)
      }
    }
    return { live: live.sort(), offline: offline.sort() }
  }

  /**
   * A live target that speaks for itself (it holds a lease): never one the scheduler pushes to,
   * such as the initiator or a cluster, whose driver speaks for it. TARGET_NOT_FOUND otherwise.
   */
  worker(targetId: string): TargetRecord<J> {
    const record = this.live(targetId)
    if (record.capabilities.leaseMs === 0) {
      throw new LockstepError(
        'TARGET_NOT_FOUND',
        `'${targetId}' is pushed to by the scheduler, not a worker that calls it`,
      )
    }
    return record
  }

  /**
   * Forgets a target that is not live (lost or left): it is no longer known, nor a site of the
   * projects it held. TARGET_LIVE for a live one, TARGET_NOT_FOUND for one not known.
   */
  forget(targetId: string): void {
    const record = this.records.get(targetId)
    if (record === undefined || record.target.kind === 'initiator') {
      throw new LockstepError(
        'TARGET_NOT_FOUND',
        `no target is registered with the id '${targetId}'`,
      )
    }
    if (record.live) {
      throw new LockstepError(
        'TARGET_LIVE',
        `'${targetId}' is live: stop it first (a worker leaves when it stops), then forget it`,
      )
    }
    this.records.delete(targetId)
  }

  /** Ends every lease timer; a lease that ends later loses nothing. */
  stop(): void {
    this.stopped = true
    for (const r of this.records.values()) r.leaseTimer?.cancel()
  }

  /** One timer per worker, moved on lazily: a heartbeat only writes the new due time. */
  private armLease(record: TargetRecord<J>, ms: number): void {
    record.leaseTimer = this.clock.setTimeout(() => {
      record.leaseTimer = undefined
      if (!record.live || this.stopped) return
      const left = record.leaseDue - this.clock.now()
      if (left > 0) this.armLease(record, left)
      else this.drop(record, 'target:lost', `${record.target.id} stopped heartbeating`)
    }, ms)
  }

  private drop(record: TargetRecord<J>, event: 'target:lost' | 'target:left', why: string): void {
    record.live = false
    record.leaseTimer?.cancel()
    record.leaseTimer = undefined
    this.hooks.gone(record, event)
    for (const job of [...record.running.values()]) this.hooks.lost(job, why)
    // A target that is gone runs nothing: there is nothing left to tell it to stop.
    record.stops = []
  }
}

function attemptKeys(running: readonly RunningAttempt[]): Set<string> {
  return new Set(running.map((r) => `${r.jobId}#${r.attempt}`))
}
