import { afterEach, describe, expect, it } from 'vitest'
import { FakeClock } from '../../../src/index.ts'
import type { Target } from '../../../src/index.ts'
import type { TargetFulfilment } from '../../../src/core/engine/fulfilment.ts'
import { TargetRegistry } from '../../../src/core/engine/target-registry.ts'
import type {
  RunningJob,
  TargetCapabilities,
  TargetRecord,
} from '../../../src/core/engine/target-registry.ts'

const LEASE = 1000
const worker: TargetCapabilities = { leaseMs: LEASE, strictOnly: false, holdsData: true }
const pushed: TargetCapabilities = { leaseMs: 0, strictOnly: false, holdsData: false }

interface Job extends RunningJob {
  readonly job: { id: string; attempt: number }
  current: TargetFulfilment | undefined
}

function target(id: string, projects: string[] = []): Target {
  return { id, kind: 'worker', availability: 1, labels: {}, projects }
}

function world() {
  const clock = new FakeClock()
  const heard: string[] = []
  const registry = new TargetRegistry<Job>(clock, {
    joined: (r) => heard.push(`joined ${r.target.id}`),
    gone: (r, event) => heard.push(`${event} ${r.target.id}`),
    lost: (job, why) => heard.push(`lost ${job.job.id}: ${why}`),
    undelivered: (job, id) => heard.push(`undelivered ${job.job.id} on ${id}`),
  })
  registries.push({ clock, registry })
  /** Puts an attempt of `id` on a target, started now. */
  const run = (record: TargetRecord<Job>, id: string, attempt = 1): Job => {
    const job: Job = {
      job: { id, attempt },
      current: {
        jobId: id,
        orderId: 'o',
        attempt,
        target: record.target.id,
        state: 'running',
        transitions: [{ state: 'running', at: clock.now() }],
      },
    }
    record.running.set(id, job)
    return job
  }
  return { clock, registry, heard, run }
}

let registries: { clock: FakeClock; registry: TargetRegistry<Job> }[] = []

afterEach(() => {
  for (const w of registries) w.registry.stop()
  for (const w of registries) expect(w.clock.pendingTimers()).toBe(0)
  registries = []
})

describe('TargetRegistry', () => {
  it('loses a silent target once its lease runs out, and every attempt it ran', () => {
    const { clock, registry, heard, run } = world()
    const w1 = registry.register(target('w1'), worker)
    run(w1, 'a')
    run(w1, 'b')
    clock.advance(LEASE - 1)
    expect(registry.isLive('w1')).toBe(true)
    clock.advance(1)
    expect(registry.isLive('w1')).toBe(false)
    expect(heard).toEqual([
      'joined w1',
      'target:lost w1',
      'lost a: w1 stopped heartbeating',
      'lost b: w1 stopped heartbeating',
    ])
    expect(() => registry.live('w1')).toThrow(/was lost; register it again/)
  })

  it('moves a lease on with each heartbeat, with one timer', () => {
    const { clock, registry } = world()
    const w1 = registry.register(target('w1'), worker)
    for (let i = 0; i < 5; i++) {
      clock.advance(LEASE / 2)
      registry.heartbeat(w1, undefined, LEASE)
    }
    expect(clock.pendingTimers()).toBe(1)
    clock.advance(LEASE - 1)
    expect(registry.isLive('w1')).toBe(true)
    clock.advance(1)
    expect(registry.isLive('w1')).toBe(false)
  })

  it('holds no lease for a target whose capabilities give none', () => {
    const { clock, registry } = world()
    registry.register(target('k8s'), pushed)
    expect(clock.pendingTimers()).toBe(0)
    clock.advance(100 * LEASE)
    expect(registry.isLive('k8s')).toBe(true)
  })

  it('calls an attempt undelivered only once it had the grace period to arrive', () => {
    const { clock, registry, heard, run } = world()
    const w1 = registry.register(target('w1'), worker)
    run(w1, 'a')
    clock.advance(LEASE / 2)
    registry.heartbeat(w1, [], LEASE)
    run(w1, 'b')
    clock.advance(LEASE / 2)
    registry.heartbeat(w1, [], LEASE)
    expect(heard.slice(1)).toEqual(['undelivered a on w1'])
    registry.heartbeat(w1, [{ jobId: 'a', attempt: 1 }], LEASE)
    expect(heard.slice(2)).toEqual([])
  })

  it('loses the attempts a restarted target no longer runs', () => {
    const { registry, heard, run } = world()
    const w1 = registry.register(target('w1'), worker)
    run(w1, 'a')
    run(w1, 'b', 2)
    registry.restarted(w1, [{ jobId: 'b', attempt: 2 }])
    expect(heard.slice(1)).toEqual(['lost a: w1 restarted without it'])
  })

  it('lists the live targets holding data for a project, in id order, by capability', () => {
    const { registry } = world()
    registry.register(target('w3', ['census']), worker)
    registry.register(target('w1', ['census', 'x']), worker)
    registry.register(target('k8s', ['census']), pushed)
    registry.register(target('w2', ['x']), worker)
    registry.restore([{ target: target('w0', ['census']), live: false }], () => worker)
    expect(registry.sitesOf('census').live).toEqual(['w1', 'w3'])
    registry.remove(registry.live('w1'))
    expect(registry.sitesOf('census').live).toEqual(['w3'])
    registry.register(target('w0', ['census']), worker)
    expect(registry.sitesOf('census').live).toEqual(['w0', 'w3'])
  })
})
