/**
 * Prometheus metrics through prom-client: jobs by state, orders and queue depth, live targets,
 * heartbeats and their latency, lost targets, and the process metrics prom-client collects
 * (CPU, memory, event-loop lag, open handles). Gauges are read from the service at scrape time,
 * so a scrape costs nothing between scrapes.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { Assignment } from '../core/protocol.ts'
import type { SchedulerService } from '../service/service.ts'

export class Metrics {
  readonly registry = new Registry()
  private readonly heartbeats: Histogram
  private readonly handedOut: Counter
  private readonly inputs: Counter<'local'>
  private readonly off: () => void

  constructor(service: SchedulerService) {
    const registers = [this.registry]
    collectDefaultMetrics({ register: this.registry })
    new Gauge({
      name: 'lockstep_jobs',
      help: 'Jobs of the orders in flight, by state.',
      labelNames: ['state'],
      registers,
      collect() {
        for (const [state, n] of Object.entries(service.stats().jobs)) this.set({ state }, n)
      },
    })
    new Gauge({
      name: 'lockstep_orders_in_flight',
      help: 'Orders not yet ended.',
      registers,
      collect() {
        this.set(service.stats().orders)
      },
    })
    new Gauge({
      name: 'lockstep_queue_depth',
      help: 'Jobs ready and waiting for a target.',
      registers,
      collect() {
        this.set(service.stats().queued)
      },
    })
    new Gauge({
      name: 'lockstep_store_ready',
      help: '1 when the database takes writes, 0 while it fails (writes are answered 503).',
      registers,
      collect() {
        this.set(service.storeStatus().ready ? 1 : 0)
      },
    })
    new Gauge({
      name: 'lockstep_store_pending_changes',
      help: 'Changes recorded and not yet stored (a failed batch kept for retry included).',
      registers,
      collect() {
        this.set(service.storeStatus().pending)
      },
    })
    new Gauge({
      name: 'lockstep_targets_live',
      help: 'Targets connected now.',
      registers,
      collect() {
        this.set(service.stats().targets)
      },
    })
    // The engine counts refused announcements; the counter catches up with it at each scrape.
    let refusedSeen = 0
    new Counter({
      name: 'lockstep_announcements_refused_total',
      help: 'Products targets announced without having made, held or been sent to fetch them.',
      registers,
      collect() {
        const refused = service.stats().refusedAnnouncements
        if (refused > refusedSeen) this.inc(refused - refusedSeen)
        refusedSeen = refused
      },
    })
    this.heartbeats = new Histogram({
      name: 'lockstep_heartbeat_seconds',
      help: 'Time to answer a heartbeat, long polls included.',
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
      registers,
    })
    this.handedOut = new Counter({
      name: 'lockstep_jobs_handed_out_total',
      help: 'Jobs handed to workers by heartbeats.',
      registers,
    })
    this.inputs = new Counter({
      name: 'lockstep_inputs_handed_out_total',
      help: 'Inputs of the jobs handed to workers; local="true" for those already in that worker\'s cache.',
      labelNames: ['local'],
      registers,
    })
    const lost = new Counter({
      name: 'lockstep_targets_lost_total',
      help: 'Targets lost for missing their lease.',
      registers,
    })
    this.off = service.on((e) => {
      if (e.type === 'target:lost') lost.inc()
    })
  }

  /**
   * Records one heartbeat of `targetId`: how long it took to answer (long polls included), the
   * jobs handed out, and their inputs, local where the target holds them already.
   */
  heartbeat(seconds: number, targetId: string, assignments: readonly Assignment[]): void {
    this.heartbeats.observe(seconds)
    if (assignments.length === 0) return
    this.handedOut.inc(assignments.length)
    let local = 0
    let fetched = 0
    for (const a of assignments) {
      for (const input of a.inputs) {
        if (input.holders.includes(targetId)) local++
        else fetched++
      }
    }
    if (local > 0) this.inputs.inc({ local: 'true' }, local)
    if (fetched > 0) this.inputs.inc({ local: 'false' }, fetched)
  }

  render(): Promise<string> {
    return this.registry.metrics()
  }

  get contentType(): string {
    return this.registry.contentType
  }

  close(): void {
    this.off()
  }
}
