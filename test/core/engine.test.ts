import { afterEach, describe, expect, it } from 'vitest'
import { Engine, FakeClock, LockstepError, emptyCounts } from '../../src/index.ts'
import type {
  Assignment,
  EngineEvent,
  JobCounts,
  OrderFulfilment,
  PacketOptions,
  StepSpec,
} from '../../src/index.ts'

const LEASE = 1000
const WORKERS = ['w1', 'w2', 'w3']
const op = { builtin: 'noop' }

interface World {
  clock: FakeClock
  engine: Engine
  events: EngineEvent[]
}

let worlds: World[] = []

afterEach(() => {
  for (const w of worlds) w.engine.stop()
  for (const w of worlds) expect(w.clock.pendingTimers()).toBe(0)
  worlds = []
})

function world(workers: string[] = WORKERS): World {
  const clock = new FakeClock()
  const engine = new Engine({
    clock,
    leaseMs: LEASE,
    cacheTimeoutMs: 50,
    depsTimeoutMs: 50,
    random: () => 0.5,
  })
  const events: EngineEvent[] = []
  engine.on((e) => events.push(e))
  for (const id of workers) engine.registerTarget({ id, projects: ['clinic'], slots: 4 })
  const w = { clock, engine, events }
  worlds.push(w)
  return w
}

/** Counts with only the given states non-zero. */
function counts(partial: Partial<JobCounts>): JobCounts {
  return { ...emptyCounts(), ...partial }
}

function errorCode(fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (e) {
    if (e instanceof LockstepError) return e.code
    throw e
  }
  return undefined
}

function one(w: World, target: string): Assignment {
  const picked = w.engine.pick(target, 1)
  expect(picked, `a job for ${target}`).toHaveLength(1)
  return picked[0]!
}

/** A success, with the product's hash as a worker reports it. */
function ok(w: World, a: Assignment): void {
  w.engine.complete(a.target, a.jobId, a.attempt, { ok: true, productHash: HASH })
}

const HASH = 'c'.repeat(64)

function packet(jobs: PacketOptions['jobs'], extra: Partial<PacketOptions> = {}): PacketOptions {
  return { name: 'p', jobs, ...extra }
}

/** Orders a → b beside an independent c. */
function branches(w: World): OrderFulfilment {
  return w.engine.submitPacket(
    packet([
      { name: 'a', op },
      { name: 'b', op, after: ['a'] },
      { name: 'c', op },
    ]),
    {},
    'ana',
  )
}

describe('federated flows over three workers', () => {
  it('scatter-gather: three parallel jobs, then the initiator collects', () => {
    const w = world()
    const steps: StepSpec[] = [
      { kind: 'parallel', op },
      { kind: 'finalize', op },
    ]
    const order = w.engine.submitArtifact({ project: 'clinic', steps }, {}, 'ana')
    expect(order.counts).toEqual(counts({ ready: 3, waiting: 1 }))
    const expected = [
      counts({ ready: 2, waiting: 1, succeeded: 1 }),
      counts({ ready: 1, waiting: 1, succeeded: 2 }),
      counts({ ready: 1, succeeded: 3 }),
    ]
    WORKERS.forEach((id, i) => {
      const a = one(w, id)
      expect(a.target).toBe(id)
      ok(w, a)
      expect(w.engine.fulfilment(order.orderId).counts).toEqual(expected[i])
    })
    const gather = one(w, 'initiator')
    expect(gather.inputs.map((input) => input.holders)).toEqual([['w1'], ['w2'], ['w3']])
    ok(w, gather)
    const done = w.engine.fulfilment(order.orderId)
    expect(done.counts).toEqual(counts({ succeeded: 4 }))
    expect(done.state).toBe('succeeded')
    expect(done.progress).toBe(1)
  })

  it('a secure sum runs through every worker in turn and back to the initiator', () => {
    const w = world()
    const order = w.engine.submitArtifact(
      { project: 'clinic', steps: [{ kind: 'sequential', op: { builtin: 'sum' } }] },
      {},
      'ana',
    )
    const path = ['initiator', 'w1', 'w2', 'w3', 'initiator']
    path.forEach((target, i) => {
      // Only the next link of the chain may run; nobody else gets anything.
      for (const other of ['initiator', ...WORKERS]) {
        if (other !== target) expect(w.engine.pick(other, 8)).toEqual([])
      }
      const a = one(w, target)
      if (i > 0) expect(a.inputs).toHaveLength(1)
      ok(w, a)
      const c = w.engine.fulfilment(order.orderId).counts
      expect(c).toEqual(
        counts({ succeeded: i + 1, ready: i < 4 ? 1 : 0, waiting: Math.max(0, 3 - i) }),
      )
    })
    expect(w.engine.fulfilment(order.orderId).state).toBe('succeeded')
  })

  it('two iterations of train and aggregate report the current iteration', () => {
    const w = world()
    const steps: StepSpec[] = [
      { kind: 'initialize', op },
      {
        kind: 'iterate',
        iterations: 2,
        steps: [
          { kind: 'parallel', op: { builtin: 'mean' } },
          { kind: 'finalize', op: { builtin: 'mean' } },
        ],
      },
    ]
    const order = w.engine.submitArtifact({ project: 'clinic', steps }, {}, 'ana')
    expect(order.total).toBe(9)
    expect(order.iterations).toBe(2)
    ok(w, one(w, 'initiator'))
    for (const iteration of [0, 1]) {
      expect(w.engine.fulfilment(order.orderId).iteration).toBe(iteration)
      for (const id of WORKERS) {
        const a = one(w, id)
        expect(a.iteration).toBe(iteration)
        ok(w, a)
      }
      expect(w.engine.fulfilment(order.orderId).counts).toMatchObject({
        ready: 1,
        succeeded: 1 + iteration * 4 + 3,
      })
      ok(w, one(w, 'initiator'))
    }
    const done = w.engine.fulfilment(order.orderId)
    expect(done).toMatchObject({ state: 'succeeded', iteration: 1, counts: { succeeded: 9 } })
  })

  it('binds only to live workers holding the project, and refuses when there are none', () => {
    const w = world()
    w.engine.registerTarget({ id: 'w4', projects: ['other'] })
    const bound = w.engine.submitArtifact(
      { project: 'clinic', steps: [{ kind: 'parallel', op }] },
      {},
      'ana',
    )
    expect(w.engine.jobs(bound.orderId).map((j) => j.policy)).toEqual(
      WORKERS.map((target) => ({ kind: 'strict', target })),
    )
    const artifact = { project: 'genomes', steps: [{ kind: 'parallel', op }] }
    expect(errorCode(() => w.engine.submitArtifact(artifact, {}, 'ana'))).toBe(
      'NO_WORKER_FOR_PROJECT',
    )
    expect(() =>
      w.engine.submitArtifact(
        { project: 'clinic', steps: [{ kind: 'parallel', op }] },
        { override: { target: 'any' } },
        'ana',
      ),
    ).toThrow(/override: an artifact's jobs are bound/)
    expect(w.engine.listOrders().map((o) => o.id)).toEqual([bound.orderId])
  })
})

describe('packets and orders', () => {
  it('a packet can be ordered many times, by name, each order with its own jobs', () => {
    const w = world()
    w.engine.createPacket(packet([{ name: 'a', op }]), 'ana')
    const first = w.engine.orderPacket('p', { priority: 70, owner: 'team' }, 'ana')
    const second = w.engine.orderPacket('p', { owner: 'bob' }, 'ana')
    expect(first.orderId).not.toBe(second.orderId)
    expect(w.engine.order(first.orderId)).toMatchObject({
      priority: 70,
      owner: 'team',
      creator: 'ana',
    })
    expect(w.engine.order(second.orderId)).toMatchObject({ priority: 50, owner: 'bob' })
    expect(errorCode(() => w.engine.orderPacket('p', {}, 'bob'))).toBe('PACKET_NOT_FOUND')
    expect(errorCode(() => w.engine.orderPacket('nope', {}, 'ana'))).toBe('PACKET_NOT_FOUND')
    expect(() => w.engine.orderPacket('p', { override: { jobs: { zz: 'w1' } } }, 'ana')).toThrow(
      "override.jobs.zz: the order has no job named 'zz'",
    )
  })

  it('an override makes jobs strict to one target, for all jobs or by name', () => {
    const w = world()
    w.engine.createPacket(
      packet([
        { name: 'a', op },
        { name: 'b', op },
      ]),
      'x',
    )
    const order = w.engine.orderPacket('p', { override: { target: 'w2', jobs: { b: 'w3' } } }, 'x')
    const [a, b] = w.engine.jobs(order.orderId)
    expect(a!.policy).toEqual({ kind: 'strict', target: 'w2' })
    expect(b!.policy).toEqual({ kind: 'strict', target: 'w3' })
    expect(w.engine.pick('w1', 8)).toEqual([])
    expect(one(w, 'w2').name).toBe('a')
    expect(one(w, 'w3').name).toBe('b')
  })

  it('locks hold a job until every job before it has succeeded', () => {
    const w = world()
    const order = w.engine.submitPacket(
      packet([
        { name: 'a', op },
        { name: 'b', op },
        { name: 'c', op, after: ['a', 'b'] },
      ]),
      {},
      'ana',
    )
    const c = w.engine.jobs(order.orderId)[2]!
    const [a, b] = w.engine.pick('w1', 2)
    expect(w.engine.explain(c.id)).toEqual({ kind: 'locks', waitingFor: [a!.jobId, b!.jobId] })
    ok(w, a!)
    expect(w.engine.explain(c.id)).toEqual({ kind: 'locks', waitingFor: [b!.jobId] })
    ok(w, b!)
    expect(w.engine.job(c.id)!.state).toBe('ready')
    const picked = one(w, 'w1')
    expect(picked.inputs.map((i) => i.name)).toEqual(['a', 'b'])
  })

  it('a higher-priority order goes first on a contended worker', () => {
    const w = world(['w1'])
    w.engine.createPacket(packet([{ name: 'a', op }]), 'ana')
    const low = w.engine.orderPacket('p', { priority: 10 }, 'ana')
    const high = w.engine.orderPacket('p', { priority: 90, owner: 'bob' }, 'ana')
    expect(one(w, 'w1').orderId).toBe(high.orderId)
    expect(one(w, 'w1').orderId).toBe(low.orderId)
  })

  it('a unique resource is held by one job at a time across orders', () => {
    const w = world()
    w.engine.createPacket(
      packet([{ name: 'train', op, uses: ['gpu'] }], {
        resources: [{ key: 'gpu', value: 'license-1', unique: true }],
      }),
      'ana',
    )
    const first = w.engine.orderPacket('p', {}, 'ana')
    const second = w.engine.orderPacket('p', { owner: 'bob' }, 'ana')
    const a = one(w, 'w1')
    expect(a.resources).toEqual([{ key: 'gpu', value: 'license-1', unique: true }])
    expect(w.engine.pick('w2', 8)).toEqual([])
    const waiting = w.engine.jobs(second.orderId)[0]!
    expect(w.engine.explain(waiting.id)).toEqual({
      kind: 'resource',
      resource: 'gpu',
      holder: a.jobId,
    })
    ok(w, a)
    expect(w.engine.fulfilment(first.orderId).state).toBe('succeeded')
    expect(one(w, 'w2').orderId).toBe(second.orderId)
  })
})

describe('locality', () => {
  /** a runs on w2; b reads a's product and becomes ready, cached nowhere. */
  function afterAOnW2(w: World) {
    const order = w.engine.submitPacket(
      packet([
        { name: 'a', op },
        { name: 'b', op, after: ['a'] },
      ]),
      {},
      'ana',
    )
    ok(w, one(w, 'w2'))
    return w.engine.jobs(order.orderId)[1]!
  }

  it('holds a job for the worker holding its inputs until DepsTimeout, then lets any worker take it', () => {
    const w = world()
    const b = afterAOnW2(w)
    expect(w.engine.explain(b.id)).toEqual({
      kind: 'locality',
      stage: 'deps',
      preferred: ['w2'],
      until: w.clock.now() + 50,
    })
    expect(w.engine.pick('w1', 4)).toEqual([])
    expect(w.engine.pick('w3', 4)).toEqual([])
    w.clock.advance(49)
    expect(w.engine.pick('w1', 4)).toEqual([])
    w.clock.advance(1)
    const late = one(w, 'w1')
    expect(late.name).toBe('b')
    expect(late.inputs.map((i) => i.holders)).toEqual([['w2']])
  })

  it('gives the job to the worker holding its inputs at once', () => {
    const w = world()
    afterAOnW2(w)
    expect(one(w, 'w2').name).toBe('b')
  })
})

describe('failure policies', () => {
  it('retries with exponential backoff, then succeeds', () => {
    const w = world(['w1'])
    const order = w.engine.submitPacket(
      packet([{ name: 'a', op, failure: { attempts: 3, backoffMs: 100, jitter: 0 } }]),
      {},
      'ana',
    )
    const first = one(w, 'w1')
    w.engine.complete('w1', first.jobId, 1, { ok: false, exitCode: 2, message: 'no input' })
    expect(w.engine.explain(first.jobId)).toEqual({
      kind: 'backoff',
      until: w.clock.now() + 100,
    })
    expect(w.engine.fulfilment(order.orderId).counts).toEqual(counts({ waiting: 1 }))
    w.clock.advance(99)
    expect(w.engine.pick('w1', 1)).toEqual([])
    w.clock.advance(1)
    const second = one(w, 'w1')
    expect(second.attempt).toBe(2)
    w.engine.complete('w1', second.jobId, 2, { ok: false, exitCode: 2 })
    w.clock.advance(199)
    expect(w.engine.pick('w1', 1)).toEqual([])
    w.clock.advance(1)
    ok(w, one(w, 'w1'))
    expect(w.engine.fulfilment(order.orderId).state).toBe('succeeded')
    expect(w.engine.attempts(first.jobId).map((a) => [a.state, a.reason, a.exitCode])).toEqual([
      ['failed', 'exit-code', 2],
      ['failed', 'exit-code', 2],
      ['succeeded', undefined, undefined],
    ])
    expect(w.engine.attempts(first.jobId)[0]!.message).toBe('no input')
  })

  it('retries on another target when the policy says so', () => {
    const w = world(['w1', 'w2'])
    w.engine.submitPacket(
      packet([{ name: 'a', op, failure: { attempts: 2, backoffMs: 0, otherTarget: true } }]),
      {},
      'ana',
    )
    const first = one(w, 'w1')
    w.engine.complete('w1', first.jobId, 1, { ok: false, reason: 'oom' })
    expect(w.engine.pick('w1', 1)).toEqual([])
    expect(one(w, 'w2').attempt).toBe(2)
  })

  it('fail-order: the order fails, waiting jobs are cancelled and running ones told to stop', () => {
    const w = world()
    const order = branches(w)
    const [a, c] = w.engine.pick('w1', 2)
    w.engine.complete('w1', a!.jobId, 1, { ok: false, exitCode: 1 })
    const f = w.engine.fulfilment(order.orderId)
    expect(f.state).toBe('failed')
    expect(f.reason).toBe('job a failed: exit-code 1')
    expect(f.counts).toEqual(counts({ failed: 1, cancelled: 2 }))
    expect(w.events.filter((e) => e.type === 'attempt:stop')).toMatchObject([
      { jobId: c!.jobId, target: 'w1', attempt: 1, reason: 'order failed' },
    ])
    expect(errorCode(() => ok(w, c!))).toBe('STALE_ATTEMPT')
    expect(w.engine.pick('w2', 8)).toEqual([])
  })

  it('continue: dependents are skipped and independent branches finish', () => {
    const w = world()
    const order = w.engine.submitPacket(
      packet(
        [
          { name: 'a', op },
          { name: 'b', op, after: ['a'] },
          { name: 'd', op, after: ['b'] },
          { name: 'c', op },
        ],
        { failure: { onExhausted: 'continue' } },
      ),
      {},
      'ana',
    )
    const [a, c] = w.engine.pick('w1', 2)
    w.engine.complete('w1', a!.jobId, 1, { ok: false, reason: 'timeout' })
    expect(w.engine.fulfilment(order.orderId).counts).toEqual(
      counts({ failed: 1, skipped: 2, running: 1 }),
    )
    expect(w.engine.jobs(order.orderId)[1]!.reason).toBe('job a failed')
    ok(w, c!)
    const f = w.engine.fulfilment(order.orderId)
    expect(f).toMatchObject({ state: 'failed', reason: '1 of 4 jobs failed' })
    expect(f.counts).toEqual(counts({ failed: 1, skipped: 2, succeeded: 1 }))
  })

  it('an attempt past its timeout fails with reason timeout and its target is told to stop', () => {
    const w = world(['w1'])
    const order = w.engine.submitPacket(packet([{ name: 'a', op, timeoutMs: 100 }]), {}, 'ana')
    const a = one(w, 'w1')
    w.engine.heartbeat('w1')
    w.clock.advance(100)
    expect(w.events.filter((e) => e.type === 'attempt:stop')).toMatchObject([
      { jobId: a.jobId, reason: 'timeout' },
    ])
    expect(w.engine.fulfilment(order.orderId)).toMatchObject({
      state: 'failed',
      reason: 'job a failed: timeout: attempt 1 ran longer than 100 ms',
    })
    expect(errorCode(() => ok(w, a))).toBe('STALE_ATTEMPT')
  })
})

describe('leases and stale attempts', () => {
  it('a worker silent past its lease is lost; its running job fails with worker-lost and retries', () => {
    const w = world(['w1', 'w2'])
    const order = w.engine.submitPacket(
      packet([{ name: 'a', op, failure: { attempts: 2, backoffMs: 0 } }]),
      {},
      'ana',
    )
    const a = one(w, 'w1')
    for (let t = 0; t < 3; t++) {
      w.clock.advance(LEASE / 2)
      w.engine.heartbeat('w2')
    }
    expect(w.events.filter((e) => e.type === 'target:lost')).toMatchObject([{ targetId: 'w1' }])
    expect(w.engine.attempts(a.jobId)[0]).toMatchObject({
      state: 'failed',
      reason: 'worker-lost',
      message: 'w1 stopped heartbeating',
    })
    expect(errorCode(() => w.engine.heartbeat('w1'))).toBe('TARGET_NOT_FOUND')
    expect(errorCode(() => ok(w, a))).toBe('STALE_ATTEMPT')
    const retry = one(w, 'w2')
    expect(retry.attempt).toBe(2)
    ok(w, retry)
    expect(w.engine.fulfilment(order.orderId).state).toBe('succeeded')
    // A lost worker comes back by registering again: live, heartbeating, and taking work, while
    // the attempt it lost stays lost.
    const w1 = () => w.engine.targets().find((t) => t.target.id === 'w1')
    expect(w1()).toMatchObject({ live: false })
    const later = w.engine.submitPacket(packet([{ name: 'b', op, target: 'w1' }]), {}, 'ana')
    const waiting = w.engine.jobs(later.orderId)[0]!
    expect(w.engine.explain(waiting.id)).toEqual({ kind: 'no-eligible-target', target: 'w1' })
    w.engine.registerTarget({ id: 'w1' })
    expect(w1()).toMatchObject({ live: true, running: 0 })
    expect(errorCode(() => w.engine.heartbeat('w1'))).toBeUndefined()
    const b = one(w, 'w1')
    expect(b.orderId).toBe(later.orderId)
    ok(w, b)
    expect(w.engine.fulfilment(later.orderId).state).toBe('succeeded')
    expect(errorCode(() => ok(w, a))).toBe('STALE_ATTEMPT')
  })

  it('runs again, without counting it, an attempt the worker never received', () => {
    const w = world(['w1'])
    w.engine.submitPacket(packet([{ name: 'a', op }]), {}, 'ana')
    const a = one(w, 'w1')
    w.engine.heartbeat('w1', [])
    expect(w.engine.job(a.jobId)!.state).toBe('running')
    w.clock.advance(LEASE / 2)
    w.engine.heartbeat('w1', [{ jobId: a.jobId, attempt: 1 }])
    w.clock.advance(LEASE / 2)
    w.engine.heartbeat('w1', [])
    expect(w.engine.attempts(a.jobId)[0]).toMatchObject({
      state: 'failed',
      reason: 'not-delivered',
      message: 'w1 never received it',
    })
    // One attempt allowed, and still it runs: the first never reached the worker.
    const again = one(w, 'w1')
    expect(again.attempt).toBe(2)
    ok(w, again)
    expect(w.engine.job(a.jobId)!.state).toBe('succeeded')
    expect(errorCode(() => w.engine.heartbeat('initiator'))).toBe('TARGET_NOT_FOUND')
  })

  it('a worker that restarts loses the attempts it no longer runs', () => {
    const w = world(['w1'])
    w.engine.submitPacket(
      packet([
        { name: 'a', op },
        { name: 'b', op },
      ]),
      {},
      'ana',
    )
    const [a, b] = w.engine.pick('w1', 2)
    w.engine.registerTarget({ id: 'w1', running: [{ jobId: b!.jobId, attempt: 1 }] })
    expect(w.engine.job(a!.jobId)).toMatchObject({ state: 'failed' })
    // b's order failed with a, so b was told to stop.
    expect(w.engine.job(b!.jobId)).toMatchObject({ state: 'cancelled' })
  })

  it('refuses a result for any attempt but the current one, so no job succeeds twice', () => {
    const w = world()
    w.engine.submitPacket(packet([{ name: 'a', op }]), {}, 'ana')
    const a = one(w, 'w1')
    expect(errorCode(() => w.engine.complete('w1', a.jobId, 2, { ok: true }))).toBe('STALE_ATTEMPT')
    expect(errorCode(() => w.engine.complete('w2', a.jobId, 1, { ok: true }))).toBe('STALE_ATTEMPT')
    ok(w, a)
    expect(errorCode(() => ok(w, a))).toBe('STALE_ATTEMPT')
    expect(w.events.filter((e) => e.type === 'job:succeeded')).toHaveLength(1)
    expect(errorCode(() => w.engine.complete('w1', 'nope', 1, { ok: true }))).toBe('JOB_NOT_FOUND')
  })
})

describe('cancellation', () => {
  function chain(w: World): OrderFulfilment {
    return w.engine.submitPacket(
      packet([
        { name: 'a', op },
        { name: 'b', op, after: ['a'] },
      ]),
      {},
      'ana',
    )
  }

  it('cancels an order whose jobs are ready and waiting', () => {
    const w = world()
    const order = chain(w)
    const f = w.engine.cancelOrder(order.orderId, 'not needed')
    expect(f).toMatchObject({ state: 'cancelled', reason: 'not needed' })
    expect(f.counts).toEqual(counts({ cancelled: 2 }))
    expect(w.engine.pick('w1', 8)).toEqual([])
  })

  it('cancels an order with a running job and tells its target to stop', () => {
    const w = world()
    const order = chain(w)
    const a = one(w, 'w1')
    w.engine.cancelOrder(order.orderId)
    expect(w.events.filter((e) => e.type === 'attempt:stop')).toMatchObject([
      { jobId: a.jobId, target: 'w1' },
    ])
    expect(w.engine.attempts(a.jobId)[0]!.state).toBe('cancelled')
    expect(errorCode(() => ok(w, a))).toBe('STALE_ATTEMPT')
  })

  it('cancels an order whose job waits for a retry', () => {
    const w = world()
    const order = w.engine.submitPacket(
      packet([{ name: 'a', op, failure: { attempts: 2, backoffMs: 500 } }]),
      {},
      'ana',
    )
    const a = one(w, 'w1')
    w.engine.complete('w1', a.jobId, 1, { ok: false })
    w.engine.cancelOrder(order.orderId)
    w.clock.advance(LEASE - 1)
    expect(w.engine.pick('w1', 8)).toEqual([])
    expect(w.events.filter((e) => e.type === 'attempt:started')).toHaveLength(1)
  })

  it('is idempotent once cancelled, and refuses an order that already ended', () => {
    const w = world()
    const order = chain(w)
    w.engine.cancelOrder(order.orderId)
    expect(w.engine.cancelOrder(order.orderId).state).toBe('cancelled')
    const done = w.engine.submitPacket(packet([{ name: 'a', op }]), {}, 'ana')
    ok(w, one(w, 'w1'))
    expect(errorCode(() => w.engine.cancelOrder(done.orderId))).toBe('ALREADY_FINAL')
    expect(errorCode(() => w.engine.cancelOrder('nope'))).toBe('ORDER_NOT_FOUND')
  })

  it('cancelling one job skips its dependents; the rest of the order runs on', () => {
    const w = world()
    const order = branches(w)
    const [a, , c] = w.engine.jobs(order.orderId)
    w.engine.cancelJob(a!.id)
    expect(w.engine.fulfilment(order.orderId).counts).toEqual(
      counts({ cancelled: 1, skipped: 1, ready: 1 }),
    )
    const picked = one(w, 'w1')
    expect(picked.jobId).toBe(c!.id)
    ok(w, picked)
    expect(w.engine.fulfilment(order.orderId)).toMatchObject({
      state: 'cancelled',
      reason: '1 of 3 jobs were cancelled',
    })
    expect(errorCode(() => w.engine.cancelJob(c!.id))).toBe('ALREADY_FINAL')
  })
})

describe('events', () => {
  it('tells every transition of a one-job order in order', () => {
    const w = world(['w1'])
    w.events.length = 0
    const order = w.engine.submitPacket(packet([{ name: 'a', op }]), {}, 'ana')
    ok(w, one(w, 'w1'))
    expect(w.events.map((e) => e.type)).toEqual([
      'packet:created',
      'order:submitted',
      'job:ready',
      'attempt:started',
      'attempt:ended',
      'job:succeeded',
      'order:succeeded',
    ])
    const submitted = w.events[1]!
    expect(submitted).toMatchObject({ type: 'order:submitted', order: { id: order.orderId } })
    expect(w.events.every((e) => e.at === w.clock.now())).toBe(true)
  })

  it('registration checks its input and names the field', () => {
    const w = world([])
    expect(() => w.engine.registerTarget({ id: 'w 1' })).toThrow(/^id: must be/)
    expect(() => w.engine.registerTarget({ id: 'w1', slots: -1 })).toThrow(/^slots:/)
    expect(() => w.engine.registerTarget({ id: 'initiator' })).toThrow(/initiator's id/)
  })
})

describe('cache keys', () => {
  const keyed = (name: string, key: string, extra: object = {}) => ({
    name,
    jobs: [{ name: 'build', op, cache: key, ...extra }],
  })

  it('a job whose product a live worker holds succeeds without running', () => {
    const w = world()
    const first = w.engine.submitPacket(keyed('a', 'lib@1'), {}, 'ana')
    const a = one(w, 'w2')
    expect(a.productId).toBe('cache:lib@1')
    ok(w, a)
    w.events.length = 0
    const again = w.engine.submitPacket(
      {
        name: 'b',
        jobs: [
          { name: 'build', op, cache: 'lib@1' },
          { name: 'use', op, after: ['build'], target: 'w3' },
        ],
      },
      {},
      'bob',
    )
    expect(w.events.filter((e) => e.type === 'attempt:started')).toEqual([])
    expect(w.events.find((e) => e.type === 'job:succeeded')).toMatchObject({
      cached: true,
      target: 'w2',
      productId: 'cache:lib@1',
    })
    const use = one(w, 'w3')
    expect(use.inputs).toEqual([
      {
        jobId: w.engine.jobs(again.orderId)[0]!.id,
        productId: 'cache:lib@1',
        name: 'build',
        holders: ['w2'],
        hash: HASH,
      },
    ])
    expect(w.engine.fulfilment(first.orderId).state).toBe('succeeded')
  })

  it('runs jobs with one key in flight together once, and the others take its product', () => {
    const w = world()
    const orders = [1, 2, 3].map((i) => w.engine.submitPacket(keyed(`p${i}`, 'k'), {}, 'ana'))
    const waiting = w.engine.jobs(orders[1]!.orderId)[0]!
    const picked = w.engine.pick('w1', 8)
    expect(picked).toHaveLength(1)
    expect(w.engine.explain(waiting.id)).toEqual({ kind: 'same-product', job: picked[0]!.jobId })
    expect(w.engine.pick('w2', 8)).toEqual([])
    ok(w, picked[0]!)
    for (const o of orders) expect(w.engine.fulfilment(o.orderId).state).toBe('succeeded')
    expect(w.events.filter((e) => e.type === 'attempt:started')).toHaveLength(1)
  })

  it('lets the next job with the key run when the one making it fails or is cancelled', () => {
    const w = world()
    const [x, y, z] = [1, 2, 3].map((i) => w.engine.submitPacket(keyed(`p${i}`, 'k'), {}, 'ana'))
    const first = one(w, 'w1')
    w.engine.complete('w1', first.jobId, 1, { ok: false, exitCode: 1 })
    expect(w.engine.fulfilment(x!.orderId).state).toBe('failed')
    const second = one(w, 'w1')
    expect(second.orderId).toBe(y!.orderId)
    w.engine.cancelOrder(y!.orderId)
    const third = one(w, 'w1')
    expect(third.orderId).toBe(z!.orderId)
    ok(w, third)
    expect(w.engine.fulfilment(z!.orderId).state).toBe('succeeded')
  })
})

describe('image jobs on a cluster', () => {
  it('leave no product: the jobs after them wait for their success and read no input from them', () => {
    const w = world()
    w.engine.registerTarget({ id: 'k1', kind: 'kubernetes', slots: 2 })
    w.engine.submitPacket(
      packet([
        { name: 'build', op: { image: 'alpine:3', command: ['true'] } },
        { name: 'report', op: { builtin: 'noop' }, after: ['build'] },
      ]),
      {},
      'ana',
    )
    // A worker runs no image, and the report waits for the build.
    expect(w.engine.pick('w1', 4)).toEqual([])
    const [build] = w.engine.cycle(new Map([['k1', 2]]))
    expect(build).toMatchObject({ name: 'build', target: 'k1' })
    w.engine.complete('k1', build!.jobId, 1, {
      ok: true,
      artefacts: ['https://files.example/build.log'],
    })
    expect(w.engine.attempts(build!.jobId)[0]!.product).toBeUndefined()
    expect(w.engine.holders(build!.productId)).toEqual([])
    const report = one(w, 'w1')
    expect(report.name).toBe('report')
    expect(report.inputs).toEqual([])
    const succeeded = w.events.find((e) => e.type === 'job:succeeded' && e.jobId === build!.jobId)
    expect(succeeded).toMatchObject({ kept: false })
  })
})
