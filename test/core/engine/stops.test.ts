/**
 * Stops are data the engine keeps for the worker that must hear them: a cancelled or timed-out
 * attempt is told to its worker once, on its next call, and to no one else.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { Engine, FakeClock } from '../../../src/index.ts'

const op = { builtin: 'noop' }
const engines: { engine: Engine; clock: FakeClock }[] = []

afterEach(() => {
  for (const { engine, clock } of engines.splice(0)) {
    engine.stop()
    expect(clock.pendingTimers()).toBe(0)
  }
})

function world(): { engine: Engine; clock: FakeClock } {
  const clock = new FakeClock()
  const engine = new Engine({ clock, leaseMs: 1000, cacheTimeoutMs: 0, depsTimeoutMs: 0 })
  engine.registerTarget({ id: 'w1', slots: 4 })
  engine.registerTarget({ id: 'w2', slots: 4 })
  engines.push({ engine, clock })
  return { engine, clock }
}

describe('stops', () => {
  it('tells a cancelled attempt to its worker once, and to no other worker', () => {
    const { engine } = world()
    const order = engine.submitPacket(
      { name: 'p', jobs: [{ name: 'a', op, target: 'w1' }] },
      {},
      'ana',
    )
    const [a] = engine.pick('w1', 1)
    engine.cancelOrder(order.orderId, 'no longer needed')
    expect(engine.takeStops('w2')).toEqual([])
    expect(engine.takeStops('w1')).toEqual([
      { jobId: a!.jobId, attempt: 1, reason: 'order cancelled' },
    ])
    expect(engine.takeStops('w1')).toEqual([])
  })

  it('tells a timed-out attempt as timeout', () => {
    const { engine, clock } = world()
    engine.submitPacket({ name: 'p', jobs: [{ name: 'a', op, timeoutMs: 100 }] }, {}, 'ana')
    const [a] = engine.pick('w1', 1)
    engine.heartbeat('w1')
    clock.advance(100)
    expect(engine.takeStops('w1')).toEqual([{ jobId: a!.jobId, attempt: 1, reason: 'timeout' }])
  })

  it('keeps nothing for a worker that is lost', () => {
    const { engine, clock } = world()
    const order = engine.submitPacket({ name: 'p', jobs: [{ name: 'a', op }] }, {}, 'ana')
    engine.pick('w1', 1)
    engine.cancelOrder(order.orderId)
    clock.advance(1000)
    engine.registerTarget({ id: 'w1', slots: 4 })
    expect(engine.takeStops('w1')).toEqual([])
  })
})
