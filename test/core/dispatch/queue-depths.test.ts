/**
 * Queue depths as the dashboard shows them: each job counted in the queues it stands in now, a
 * job that left (taken, or moved on) no longer counted though its stale entry is still there.
 */
import { describe, expect, it } from 'vitest'
import { FakeClock, Scheduler } from '../../../src/index.ts'

const CACHE = 100
const DEPS = 200
const ok = { ok: true }

function depths(s: Scheduler) {
  const d = s.queueDepths()
  return { global: d.global, ...Object.fromEntries(d.targets) }
}

describe('queue depths', () => {
  it('follows a job from first local queue to second to global, and out when taken', () => {
    const clock = new FakeClock()
    const s = new Scheduler({ cacheTimeoutMs: CACHE, depsTimeoutMs: DEPS, clock })
    for (const w of ['w1', 'w2']) s.registerWorker(w)
    s.onJobComplete('w1', 'j', ok)
    s.onJobComplete('w2', 'dep', ok)
    s.scheduleJob({ id: 'j', deps: ['dep'] })
    const none = { firstLocal: 0, secondLocal: 0 }
    expect(depths(s)).toEqual({ global: 0, w1: { firstLocal: 1, secondLocal: 0 }, w2: none })
    clock.advance(CACHE)
    expect(depths(s)).toEqual({
      global: 0,
      w1: { firstLocal: 1, secondLocal: 0 },
      w2: { firstLocal: 0, secondLocal: 1 },
    })
    clock.advance(DEPS)
    expect(depths(s).global).toBe(1)
    expect(s.tryPickJob('w2')?.job.id).toBe('j')
    // Its entries in w1's first queue and the global queue are stale now: not counted.
    expect(depths(s)).toEqual({ global: 0, w1: none, w2: none })
    s.stop()
    expect(clock.pendingTimers()).toBe(0)
  })
})
