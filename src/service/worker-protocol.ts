/**
 * The worker protocol: one long-polling heartbeat per worker. Finished results, the attempts it
 * runs and its cache changes come in; up to `free` new attempts and the attempts it must stop go
 * out. One straight path: parse, apply to the engine, take work, and, on a quiet cluster, wait
 * for work, then answer once every change is stored.
 *
 * Invariants: a result is applied only to the job's current attempt (the engine refuses the
 * rest, and the refusal goes back to the worker); a long poll never outlasts half a lease, so a
 * worker is never lost while it waits, nor while the database fails; every assignment and every stop in an answer is stored
 * before the answer leaves; every input of an assignment carries a capability signed for its
 * product and this worker.
 */
import type { Engine } from '../core/engine/engine.ts'
import { LockstepError } from '../core/errors.ts'
import { heartbeatSchema } from '../core/protocol.ts'
import type { HeartbeatInput, HeartbeatReply } from '../core/protocol.ts'
import { parseInput } from '../core/schema.ts'
import type { CapabilitySigner } from './capabilities.ts'
import type { GroupCommit } from './group-commit.ts'

export class WorkerProtocol {
  private readonly engine: Engine
  private readonly commit: GroupCommit
  private readonly capabilities: CapabilitySigner
  /** Heartbeats waiting for work. */
  private readonly wake = new Set<() => void>()

  constructor(engine: Engine, commit: GroupCommit, capabilities: CapabilitySigner) {
    this.engine = engine
    this.commit = commit
    this.capabilities = capabilities
  }

  /** Work arrived (a job became ready, or an attempt must stop): waiting polls look again. */
  workArrived(): void {
    if (this.wake.size === 0) return
    for (const wake of [...this.wake]) wake()
  }

  /** A worker's one call. Answers once all of it is stored. */
  async heartbeat(
    targetId: string,
    input: HeartbeatInput = {},
    signal?: AbortSignal,
  ): Promise<HeartbeatReply> {
    try {
      this.commit.check()
    } catch (e) {
      // While the database fails, a refused heartbeat still renews its worker's lease: that
      // lives in memory and is never stored, and a worker must not be lost, and its attempts
      // run again, for an outage it had no part in.
      if (e instanceof LockstepError && e.code === 'STORE_UNAVAILABLE') this.renewLease(targetId)
      throw e
    }
    const body = parseInput(heartbeatSchema, input)
    const engine = this.engine
    engine.heartbeat(targetId)
    const refused: HeartbeatReply['refused'] = []
    for (const r of body.results ?? []) {
      try {
        engine.complete(targetId, r.jobId, r.attempt, r.result)
      } catch (e) {
        if (!(e instanceof LockstepError)) throw e
        refused.push({ jobId: r.jobId, attempt: r.attempt, code: e.code, message: e.message })
      }
    }
    // After the results: an attempt that just finished is reported, not running.
    if (body.running !== undefined) engine.heartbeat(targetId, body.running)
    if ((body.added?.length ?? 0) + (body.removed?.length ?? 0) > 0) {
      engine.reportCache(targetId, body.added ?? [], body.removed ?? [])
    }
    const free = body.free ?? 0
    let assignments = free > 0 ? engine.pick(targetId, free) : []
    let stop = engine.takeStops(targetId)
    const waitMs = Math.min(body.waitMs ?? 0, Math.floor(engine.leaseMs / 2))
    if (assignments.length === 0 && stop.length === 0 && refused.length === 0 && waitMs > 0) {
      // Results and cache changes are stored before the wait, so none waits on a quiet cluster.
      await this.commit.durable()
      // Work that arrived while they were stored found nobody waiting: look once more first.
      if (!this.commit.stopped) {
        if (free > 0) assignments = engine.pick(targetId, free)
        stop = engine.takeStops(targetId)
      }
      // Every waiting poll is woken when work arrives, but one with free slots that finds none
      // for itself (the job went to another worker, the stop was for another) waits on for the
      // time it has left, instead of answering empty: a thousand idle workers cost no thousand
      // round trips per ready job. A poll with no free slot answers on any wake, so that its
      // worker asks again once a slot is free.
      const deadline = performance.now() + waitMs
      while (assignments.length === 0 && stop.length === 0 && !this.commit.stopped) {
        const left = deadline - performance.now()
        if (left <= 0) break
        await this.waitForWork(left, signal)
        if (this.commit.stopped || (signal?.aborted ?? false)) break
        engine.heartbeat(targetId)
        if (free > 0) assignments = engine.pick(targetId, free)
        stop = engine.takeStops(targetId)
        if (free === 0) break
      }
    }
    await this.commit.durable()
    // Each input's capability lets this worker fetch it from the peer that holds it.
    return { assignments: this.capabilities.attach(assignments), refused, stop }
  }

  private renewLease(targetId: string): void {
    try {
      this.engine.heartbeat(targetId)
    } catch {
      // An unknown or lost worker registers again once the database is back.
    }
  }

  /** Resolves when work arrives, after `ms`, or when the caller goes away. */
  private waitForWork(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer)
        this.wake.delete(done)
        signal?.removeEventListener('abort', done)
        resolve()
      }
      const timer = setTimeout(done, ms)
      this.wake.add(done)
      signal?.addEventListener('abort', done, { once: true })
    })
  }
}
