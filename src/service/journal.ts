/**
 * The journal turns the engine's events into the next store batch. It records what changed, and
 * reads the rows when the batch is taken: a job that went ready → running → succeeded between two
 * commits is written once, in its last state. Everything emitted before `take()` is in the batch,
 * and the batch holds copies, so the rows and the event log always agree even while the engine
 * moves on during an asynchronous commit.
 */
import type { Engine, PacketRecord } from '../core/engine/engine.ts'
import type { EngineEvent } from '../core/engine/events.ts'
import { logEntry } from '../core/event-log.ts'
import type { TargetFulfilment } from '../core/engine/fulfilment.ts'
import type { Id } from '../core/ids.ts'
import type { Job, Lock, Target } from '../core/model.ts'
import { emptyBatch } from '../store/store.ts'
import type { ArtifactRecord, Batch, EventRow, ProductLocation } from '../store/store.ts'

export class Journal {
  private packets: PacketRecord[] = []
  private artifacts: ArtifactRecord[] = []
  private newOrders = new Map<Id, { jobs: Job[]; locks: Lock[]; iterations: number }>()
  private orders = new Set<Id>()
  private jobs = new Set<Id>()
  private attempts = new Map<string, TargetFulfilment>()
  private released: Id[] = []
  private targets = new Map<string, { target: Target; live: boolean; at: number }>()
  /** Product and target → added (true) or removed (false); the last change wins. */
  private products = new Map<string, boolean>()
  private cachesDropped = new Set<string>()
  private targetsForgotten = new Set<string>()
  private holders = new Map<string, Id | undefined>()
  private events: EventRow[] = []
  /** The `seq` of the last event numbered: the log's numbers are given here, in record order. */
  private lastSeq = 0

  /** Numbers the next event after `seq`: the last one stored, on start. */
  numberAfter(seq: number): void {
    this.lastSeq = seq
  }

  get empty(): boolean {
    return this.events.length === 0
  }

  /** How many events wait for the next batch. */
  get size(): number {
    return this.events.length
  }

  /** Records an event for the next batch; returns its row, numbered. */
  add(e: EngineEvent, engine: Engine): EventRow {
    switch (e.type) {
      case 'packet:created':
        this.packets.push(engine.packet(e.packetId)!)
        break
      case 'order:submitted':
        this.newOrders.set(e.order.id, { jobs: e.jobs, locks: e.locks, iterations: e.iterations })
        if (e.artifact !== undefined && e.order.source.kind === 'artifact') {
          this.artifacts.push({
            id: e.order.source.artifactId,
            artifact: e.artifact,
            createdAt: e.at,
          })
        }
        break
      case 'order:succeeded':
      case 'order:failed':
      case 'order:cancelled':
        this.orders.add(e.orderId)
        break
      case 'job:ready':
      case 'job:retrying':
      case 'job:failed':
      case 'job:skipped':
      case 'job:cancelled':
        this.jobs.add(e.jobId)
        break
      case 'job:succeeded':
        this.jobs.add(e.jobId)
        this.released.push(e.jobId)
        if (e.kept !== false) this.product(e.productId, e.target, true)
        break
      case 'attempt:started': {
        this.jobs.add(e.jobId)
        const job = engine.job(e.jobId)!
        const attempt = engine.attempts(e.jobId)[e.attempt - 1]!
        this.attempts.set(`${e.jobId}#${e.attempt}`, attempt)
        // The order's row changes with its first attempt only (it starts then); not with later
        // ones. Two that start in the same millisecond both write it, which is harmless.
        if (engine.orderStartedAt(e.orderId) === attempt.transitions[0]!.at) {
          this.orders.add(e.orderId)
        }
        for (const r of job.uses) if (r.unique) this.holders.set(r.key, e.jobId)
        break
      }
      case 'attempt:ended': {
        const f = e.fulfilment
        this.attempts.set(`${f.jobId}#${f.attempt}`, f)
        for (const r of engine.job(e.jobId)!.uses) {
          if (r.unique && (this.holders.get(r.key) ?? e.jobId) === e.jobId) {
            this.holders.set(r.key, undefined)
          }
        }
        break
      }
      case 'attempt:stop':
        break
      case 'target:registered':
        this.targets.set(e.target.id, { target: e.target, live: true, at: e.at })
        this.targetsForgotten.delete(e.target.id)
        break
      case 'target:forgotten':
        this.targets.delete(e.targetId)
        this.targetsForgotten.add(e.targetId)
        break
      case 'target:lost':
      case 'target:left': {
        const target = engine.target(e.targetId)!
        this.targets.set(e.targetId, { target, live: false, at: e.at })
        this.cachesDropped.add(e.targetId)
        for (const key of this.products.keys()) {
          if (key.endsWith(`\t${e.targetId}`)) this.products.delete(key)
        }
        break
      }
      case 'cache:changed':
        for (const id of e.added) this.product(id, e.targetId, true)
        for (const id of e.removed) this.product(id, e.targetId, false)
        break
      case 'cache:refused':
        break
    }
    const row = eventRow(e, ++this.lastSeq)
    this.events.push(row)
    return row
  }

  private product(productId: string, targetId: string, present: boolean): void {
    this.products.set(`${productId}\t${targetId}`, present)
  }

  /** Everything recorded since the last take, as one batch; the journal starts empty again. */
  take(engine: Engine): Batch {
    const batch = emptyBatch()
    batch.packets = this.packets
    batch.artifacts = this.artifacts
    for (const [orderId, o] of this.newOrders) {
      const f = engine.fulfilment(orderId)
      batch.orders.push({
        // Copies: the engine moves on while an asynchronous backend writes the batch.
        stored: {
          order: { ...engine.order(orderId)! },
          startedAt: f.startedAt,
          endedAt: f.endedAt,
          reason: f.reason,
          iterations: o.iterations,
        },
        jobs: o.jobs.map((job) => ({ ...job })),
        locks: o.locks,
      })
      // Inserted in their current state: no update needed.
      for (const job of o.jobs) this.jobs.delete(job.id)
      this.orders.delete(orderId)
    }
    for (const orderId of this.orders) {
      const f = engine.fulfilment(orderId)
      batch.orderUpdates.push({
        id: orderId,
        state: f.state,
        startedAt: f.startedAt,
        endedAt: f.endedAt,
        reason: f.reason,
      })
    }
    for (const jobId of this.jobs) {
      const job = engine.job(jobId)!
      batch.jobUpdates.push({
        id: jobId,
        state: job.state,
        attempt: job.attempt,
        reason: job.reason,
        retryAt: job.retryAt,
      })
    }
    for (const f of this.attempts.values()) {
      batch.attempts.push({ ...f, transitions: [...f.transitions] })
    }
    batch.released = this.released
    batch.targets = [...this.targets.values()]
    batch.cachesDropped = [...this.cachesDropped]
    batch.targetsForgotten = [...this.targetsForgotten]
    for (const [key, present] of this.products) {
      const tab = key.indexOf('\t')
      const location: ProductLocation = {
        productId: key.slice(0, tab),
        targetId: key.slice(tab + 1),
      }
      const hash = engine.productHash(location.productId)
      if (hash !== undefined) location.hash = hash
      if (present) batch.productsAdded.push(location)
      else batch.productsRemoved.push(location)
    }
    for (const [key, holder] of this.holders) batch.holders.push({ key, holder })
    batch.events = this.events
    this.reset()
    return batch
  }

  private reset(): void {
    this.packets = []
    this.artifacts = []
    this.newOrders = new Map()
    this.orders = new Set()
    this.jobs = new Set()
    this.attempts = new Map()
    this.released = []
    this.targets = new Map()
    this.products = new Map()
    this.cachesDropped = new Set()
    this.targetsForgotten = new Set()
    this.holders = new Map()
    this.events = []
  }
}

/** An event as the log keeps it (`logEntry`): the ids in columns, the rest as compact JSON. */
function eventRow(e: EngineEvent, seq: number): EventRow {
  const { type, at, ...fields } = logEntry(e)
  const body: Record<string, unknown> = fields
  const row: EventRow = { seq, at, type, body: '' }
  if (typeof body.orderId === 'string') row.orderId = body.orderId
  if (typeof body.jobId === 'string') row.jobId = body.jobId
  delete body.orderId
  delete body.jobId
  row.body = JSON.stringify(body)
  return row
}
