/**
 * Random orders, random failures, retries, timeouts, lost and returning workers, cancellations:
 * every order ends in a final state, no attempt starts after its order ended, no job succeeds
 * twice, no two running jobs hold one unique resource, and the counts always add up.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { Engine, FakeClock, LockstepError, finalJobStates } from '../../src/index.ts'
import type { Assignment, EngineEvent, PacketOptions } from '../../src/index.ts'

const WORKERS = ['w1', 'w2', 'w3']
const LEASE = 500

const packetJob = (i: number) =>
  fc.record({
    after: fc.subarray(
      Array.from({ length: i }, (_, k) => `j${k}`),
      { maxLength: Math.min(3, i) },
    ),
    target: fc.option(fc.constantFrom(...WORKERS), { nil: undefined, freq: 4 }),
    uses: fc.subarray(['r1', 'r2'], { maxLength: 2 }),
    attempts: fc.integer({ min: 1, max: 3 }),
    backoffMs: fc.constantFrom(0, 50, 200),
    otherTarget: fc.boolean(),
    onExhausted: fc.constantFrom('fail-order' as const, 'continue' as const),
    timeoutMs: fc.option(fc.constantFrom(100, 300), { nil: undefined, freq: 3 }),
    cache: fc.option(fc.constantFrom('k1', 'k2'), { nil: undefined, freq: 3 }),
  })

const packetArb = fc
  .integer({ min: 1, max: 6 })
  .chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => packetJob(i))))
  .map((jobs): PacketOptions => ({
    name: 'random',
    resources: [
      { key: 'r1', value: 'a', unique: true },
      { key: 'r2', value: 'b', unique: true },
    ],
    jobs: jobs.map((j, i) => ({
      name: `j${i}`,
      op: { builtin: 'noop' },
      after: j.after,
      target: j.target,
      uses: j.uses,
      timeoutMs: j.timeoutMs,
      cache: j.cache,
      failure: {
        attempts: j.attempts,
        backoffMs: j.backoffMs,
        otherTarget: j.otherTarget,
        onExhausted: j.onExhausted,
      },
    })),
  }))

const opArb = fc.oneof(
  {
    arbitrary: fc.record({
      kind: fc.constant('packet' as const),
      packet: packetArb,
      priority: fc.integer({ min: 1, max: 100 }),
    }),
    weight: 3,
  },
  { arbitrary: fc.record({ kind: fc.constant('artifact' as const) }), weight: 1 },
  {
    arbitrary: fc.record({
      kind: fc.constant('pick' as const),
      target: fc.constantFrom('initiator', ...WORKERS),
      max: fc.integer({ min: 1, max: 3 }),
    }),
    weight: 5,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant('complete' as const),
      index: fc.nat(),
      ok: fc.boolean(),
    }),
    weight: 6,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant('advance' as const),
      ms: fc.integer({ min: 1, max: 400 }),
    }),
    weight: 2,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant('silence' as const),
      worker: fc.constantFrom(...WORKERS),
    }),
    weight: 1,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant('revive' as const),
      worker: fc.constantFrom(...WORKERS),
    }),
    weight: 1,
  },
  {
    arbitrary: fc.record({ kind: fc.constant('cancel-order' as const), index: fc.nat() }),
    weight: 1,
  },
  {
    arbitrary: fc.record({ kind: fc.constant('cancel-job' as const), index: fc.nat() }),
    weight: 1,
  },
)

/** Runs a call that may be refused for a reason the scenario allows. */
function allowing(codes: string[], fn: () => void): void {
  try {
    fn()
  } catch (e) {
    if (e instanceof LockstepError && codes.includes(e.code)) return
    throw e
  }
}

type Op = typeof opArb extends fc.Arbitrary<infer T> ? T : never

function run(ops: Op[], seed: number): void {
  const clock = new FakeClock()
  let r = seed
  const engine = new Engine({
    clock,
    leaseMs: LEASE,
    cacheTimeoutMs: 30,
    depsTimeoutMs: 30,
    random: () => (r = (r * 1103515245 + 12345) % 2147483648) / 2147483648,
  })
  const ended = new Set<string>()
  const succeeded = new Set<string>()
  const holding = new Map<string, string>()
  const uses = new Map<string, string[]>()
  const problems: string[] = []
  engine.on((e: EngineEvent) => {
    switch (e.type) {
      case 'order:submitted':
        for (const job of e.jobs)
          uses.set(
            job.id,
            job.uses.filter((u) => u.unique).map((u) => u.key),
          )
        break
      case 'order:succeeded':
      case 'order:failed':
      case 'order:cancelled':
        if (ended.has(e.orderId)) problems.push(`order ${e.orderId} ended twice`)
        ended.add(e.orderId)
        break
      case 'attempt:started':
        if (ended.has(e.orderId)) problems.push(`job ${e.jobId} started after its order ended`)
        for (const key of uses.get(e.jobId) ?? []) {
          const other = holding.get(key)
          if (other !== undefined) problems.push(`${key} held by ${other} and ${e.jobId}`)
          holding.set(key, e.jobId)
        }
        break
      case 'attempt:ended':
        for (const key of uses.get(e.jobId) ?? []) {
          if (holding.get(key) === e.jobId) holding.delete(key)
        }
        break
      case 'job:succeeded':
        if (succeeded.has(e.jobId)) problems.push(`job ${e.jobId} succeeded twice`)
        succeeded.add(e.jobId)
        break
      default:
    }
  })
  const silent = new Set<string>()
  for (const id of WORKERS) engine.registerTarget({ id, projects: ['p'], slots: 3 })
  const handed: Assignment[] = []
  const orders: string[] = []

  const live = (id: string) => engine.targets().find((t) => t.target.id === id)?.live === true

  for (const op of ops) {
    switch (op.kind) {
      case 'packet':
        orders.push(engine.submitPacket(op.packet, { priority: op.priority }, 'u').orderId)
        break
      case 'artifact':
        // Over the live sites, as many as there are; none live is a refusal.
        allowing(['NO_WORKER_FOR_PROJECT', 'SITES_OFFLINE'], () => {
          const steps = [
            { kind: 'parallel' as const, op: { builtin: 'count' } },
            { kind: 'finalize' as const, op: { builtin: 'sum' } },
          ]
          orders.push(engine.submitArtifact({ project: 'p', steps }, { minSites: 1 }, 'u').orderId)
        })
        break
      case 'pick':
        allowing(['TARGET_NOT_FOUND'], () => handed.push(...engine.pick(op.target, op.max)))
        break
      case 'complete': {
        if (handed.length === 0) break
        const a = handed.splice(op.index % handed.length, 1)[0]!
        allowing(['STALE_ATTEMPT'], () =>
          engine.complete(
            a.target,
            a.jobId,
            a.attempt,
            op.ok ? { ok: true } : { ok: false, exitCode: 1 },
          ),
        )
        break
      }
      case 'advance':
        for (const id of WORKERS) if (!silent.has(id) && live(id)) engine.heartbeat(id)
        clock.advance(op.ms)
        break
      case 'silence':
        silent.add(op.worker)
        break
      case 'revive':
        silent.delete(op.worker)
        engine.registerTarget({ id: op.worker, projects: ['p'], slots: 3 })
        break
      case 'cancel-order':
        if (orders.length > 0) {
          allowing(['ALREADY_FINAL'], () => engine.cancelOrder(orders[op.index % orders.length]!))
        }
        break
      case 'cancel-job': {
        const all = orders.flatMap((o) => engine.jobs(o))
        if (all.length > 0) {
          allowing(['ALREADY_FINAL'], () => engine.cancelJob(all[op.index % all.length]!.id))
        }
        break
      }
    }
  }

  // Drain: every worker back, every job run to success.
  for (const id of WORKERS) engine.registerTarget({ id, projects: ['p'], slots: 3 })
  for (let round = 0; round < 200; round++) {
    if (orders.every((o) => engine.order(o)!.state !== 'running')) break
    for (const id of WORKERS) engine.heartbeat(id)
    for (const a of handed.splice(0)) {
      allowing(['STALE_ATTEMPT'], () => engine.complete(a.target, a.jobId, a.attempt, { ok: true }))
    }
    for (const t of ['initiator', ...WORKERS]) {
      for (const a of engine.pick(t, 10))
        engine.complete(a.target, a.jobId, a.attempt, { ok: true })
    }
    clock.advance(50)
  }

  for (const o of orders) {
    const f = engine.fulfilment(o)
    if (f.state === 'running') problems.push(`order ${o} never ended: ${JSON.stringify(f.counts)}`)
    const jobs = engine.jobs(o)
    const sum = Object.values(f.counts).reduce((a, b) => a + b, 0)
    if (sum !== f.total || f.total !== jobs.length) problems.push(`counts of ${o} do not add up`)
    for (const job of jobs) {
      if (!finalJobStates.has(job.state)) problems.push(`job ${job.id} left ${job.state}`)
    }
  }
  engine.stop()
  expect(problems).toEqual([])
  expect(clock.pendingTimers()).toBe(0)
}

describe('engine properties', () => {
  it('every order ends; no late start, no double success, no shared unique resource', () => {
    fc.assert(
      fc.property(
        fc.array(opArb, { maxLength: 60 }),
        fc.integer({ min: 1, max: 1_000_000 }),
        (ops, seed) => run(ops, seed),
      ),
      { numRuns: 2000 },
    )
  })
})
