/**
 * Prometheus metrics in the text exposition format: jobs by state, queue depth, heartbeat
 * latency, heartbeats and lost workers.
 */
import type { SchedulerService } from '../service/service.ts'

const BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30]

export class Metrics {
  private heartbeats = 0
  private handedOut = 0
  private lost = 0
  private readonly latency = new Array<number>(BUCKETS.length + 1).fill(0)
  private latencySum = 0
  private readonly service: SchedulerService

  constructor(service: SchedulerService) {
    this.service = service
    service.on((e) => {
      if (e.type === 'target:lost') this.lost++
    })
  }

  /** Records one heartbeat: how long it took to answer (long polls included) and jobs handed out. */
  heartbeat(seconds: number, jobs: number): void {
    this.heartbeats++
    this.handedOut += jobs
    this.latencySum += seconds
    let i = BUCKETS.findIndex((b) => seconds <= b)
    if (i < 0) i = BUCKETS.length
    this.latency[i]!++
  }

  render(): string {
    const stats = this.service.stats()
    const lines = [
      '# HELP lockstep_jobs Jobs of the orders in flight, by state.',
      '# TYPE lockstep_jobs gauge',
      ...Object.entries(stats.jobs).map(([state, n]) => `lockstep_jobs{state="${state}"} ${n}`),
      '# HELP lockstep_queue_depth Jobs ready and waiting for a target.',
      '# TYPE lockstep_queue_depth gauge',
      `lockstep_queue_depth ${stats.queued}`,
      '# HELP lockstep_targets_live Targets connected now.',
      '# TYPE lockstep_targets_live gauge',
      `lockstep_targets_live ${stats.targets}`,
      '# HELP lockstep_heartbeats_total Worker heartbeats answered.',
      '# TYPE lockstep_heartbeats_total counter',
      `lockstep_heartbeats_total ${this.heartbeats}`,
      '# HELP lockstep_jobs_handed_out_total Jobs handed to workers by heartbeats.',
      '# TYPE lockstep_jobs_handed_out_total counter',
      `lockstep_jobs_handed_out_total ${this.handedOut}`,
      '# HELP lockstep_workers_lost_total Workers lost for missing their lease.',
      '# TYPE lockstep_workers_lost_total counter',
      `lockstep_workers_lost_total ${this.lost}`,
      '# HELP lockstep_heartbeat_seconds Time to answer a heartbeat, long polls included.',
      '# TYPE lockstep_heartbeat_seconds histogram',
    ]
    let cumulative = 0
    BUCKETS.forEach((b, i) => {
      cumulative += this.latency[i]!
      lines.push(`lockstep_heartbeat_seconds_bucket{le="${b}"} ${cumulative}`)
    })
    cumulative += this.latency[BUCKETS.length]!
    lines.push(`lockstep_heartbeat_seconds_bucket{le="+Inf"} ${cumulative}`)
    lines.push(`lockstep_heartbeat_seconds_sum ${this.latencySum}`)
    lines.push(`lockstep_heartbeat_seconds_count ${cumulative}`)
    return `${lines.join('\n')}\n`
  }
}
