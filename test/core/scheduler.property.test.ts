import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { FakeClock, Scheduler } from '../../src/index.ts'
import type { PendingJob } from '../../src/index.ts'

const WORKERS = ['w1', 'w2', 'w3']
const PUSH = ['k1', 'k2']
const IDS = Array.from({ length: 24 }, (_, i) => `j${i}`)
const RESOURCES = ['r1', 'r2', 'r3']

const op = fc.oneof(
  {
    arbitrary: fc.record({
      kind: fc.constant('schedule' as const),
      id: fc.constantFrom(...IDS),
      deps: fc.subarray(IDS, { maxLength: 3 }),
      priority: fc.integer({ min: 1, max: 100 }),
      target: fc.option(fc.constantFrom(...WORKERS, ...PUSH, 'nowhere'), {
        nil: undefined,
        freq: 3,
      }),
      uses: fc.subarray(RESOURCES, { maxLength: 2 }),
      avoid: fc.subarray(WORKERS, { maxLength: 2 }),
    }),
    weight: 4,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant('pick' as const),
      worker: fc.constantFrom(...WORKERS),
    }),
    weight: 4,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant('wait' as const),
      worker: fc.constantFrom(...WORKERS),
    }),
    weight: 1,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant('complete' as const),
      which: fc.nat(),
      ok: fc.boolean(),
    }),
    weight: 3,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant('cache' as const),
      worker: fc.constantFrom(...WORKERS, ...PUSH),
      id: fc.constantFrom(...IDS),
      evict: fc.boolean(),
    }),
    weight: 2,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant('advance' as const),
      ms: fc.integer({ min: 1, max: 150 }),
    }),
    weight: 2,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant('cycle' as const),
      k1: fc.integer({ min: 0, max: 3 }),
      k2: fc.integer({ min: 0, max: 3 }),
    }),
    weight: 1,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant('lose' as const),
      worker: fc.constantFrom(...WORKERS),
    }),
    weight: 1,
  },
  {
    arbitrary: fc.record({ kind: fc.constant('cancel' as const), id: fc.constantFrom(...IDS) }),
    weight: 1,
  },
)

describe('Scheduler safety under random operations', () => {
  it('hands a job out at most once and never lets two running jobs hold one unique resource', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 120 }), async (ops) => {
        const clock = new FakeClock()
        const s = new Scheduler({ cacheTimeoutMs: 100, depsTimeoutMs: 100, clock })
        WORKERS.forEach((w) => s.registerWorker(w))
        const handedOut = new Map<PendingJob, number>()
        const scheduled = new Set<PendingJob>()
        const waits: Promise<void>[] = []
        const hand = (job: PendingJob | null) => {
          if (job !== null) handedOut.set(job, (handedOut.get(job) ?? 0) + 1)
        }
        const running = () =>
          [...scheduled].filter((p) => p.worker !== undefined && p.result === undefined)

        for (const o of ops) {
          switch (o.kind) {
            case 'schedule':
              scheduled.add(s.scheduleJob(o))
              break
            case 'pick':
              hand(s.tryPickJob(o.worker))
              break
            case 'wait':
              waits.push(s.pickJob(o.worker).then(hand))
              break
            case 'complete': {
              const now = running()
              if (now.length === 0) break
              const p = now[o.which % now.length]!
              s.onJobComplete(p.worker!, p.job.id, { ok: o.ok })
              break
            }
            case 'cache':
              if (o.evict) s.removeCached(o.worker, o.id)
              else s.addCached(o.worker, o.id)
              break
            case 'advance':
              clock.advance(o.ms)
              break
            case 'cycle':
              for (const a of s.cycle(
                new Map([
                  ['k1', o.k1],
                  ['k2', o.k2],
                ]),
              )) {
                const p = s.get(a.jobId)!
                expect(p.worker).toBe(a.target)
                hand(p)
              }
              break
            case 'lose':
              s.removeWorker(o.worker)
              s.registerWorker(o.worker)
              break
            case 'cancel':
              s.cancelJob(o.id)
              break
          }
          await Promise.resolve()
          // No two running jobs hold one unique resource.
          const held = new Map<string, string>()
          for (const p of running()) {
            for (const r of p.job.uses ?? []) {
              expect(held.get(r), `${r} held by ${held.get(r)} and ${p.job.id}`).toBeUndefined()
              held.set(r, p.job.id)
            }
            // A strict job runs on its target only.
            if (p.job.target !== undefined) expect(p.worker).toBe(p.job.target)
          }
        }
        s.stop()
        await Promise.all(waits)
        for (const [job, times] of handedOut)
          expect(times, `${job.job.id} handed out ${times} times`).toBe(1)
      }),
      { numRuns: 400 },
    )
  })

  it('lets a worker that picks forever run every job it may run, whatever the cache and resources', () => {
    const job = fc.record({
      deps: fc.subarray(IDS, { maxLength: 3 }),
      priority: fc.integer({ min: 1, max: 100 }),
      strict: fc.boolean(),
      uses: fc.subarray(RESOURCES, { maxLength: 2 }),
      cachedOn: fc.subarray(['other1', 'other2'], { maxLength: 2 }),
    })
    fc.assert(
      fc.property(fc.array(job, { minLength: 1, maxLength: IDS.length }), (jobs) => {
        const clock = new FakeClock()
        const s = new Scheduler({ cacheTimeoutMs: 500, depsTimeoutMs: 700, clock })
        // Two workers hold products but never pick; one worker picks forever.
        s.registerWorker('other1')
        s.registerWorker('other2')
        s.registerWorker('w')
        jobs.forEach((j, i) => {
          for (const holder of j.cachedOn) s.addCached(holder, IDS[i]!)
          for (const dep of j.deps) s.addCached('other1', dep)
        })
        jobs.forEach((j, i) =>
          s.scheduleJob({
            id: IDS[i]!,
            deps: j.deps,
            priority: j.priority,
            uses: j.uses,
            target: j.strict ? 'w' : undefined,
          }),
        )
        const picked = new Set<string>()
        for (let step = 0; step < 1000 && picked.size < jobs.length; step++) {
          const p = s.tryPickJob('w')
          if (p === null) {
            clock.advance(100)
            continue
          }
          picked.add(p.job.id)
          s.onJobComplete('w', p.job.id, { ok: true })
        }
        expect(picked.size).toBe(jobs.length)
        s.stop()
      }),
      { numRuns: 300 },
    )
  })
})

describe('Scheduler.cycle properties', () => {
  it('never overfills a target, fills every slot it can, and keeps strict jobs’ slots when others are spare', () => {
    const input = fc.record({
      jobs: fc.array(
        fc.record({
          priority: fc.integer({ min: 1, max: 5 }),
          target: fc.option(fc.constantFrom('a', 'b', 'c'), { nil: undefined, freq: 2 }),
        }),
        { maxLength: 20 },
      ),
      slots: fc.record({ a: fc.nat(4), b: fc.nat(4), c: fc.nat(4) }),
    })
    fc.assert(
      fc.property(input, ({ jobs, slots }) => {
        const s = new Scheduler({ cacheTimeoutMs: 10, depsTimeoutMs: 10, clock: new FakeClock() })
        jobs.forEach((j, i) =>
          s.scheduleJob({ id: `j${i}`, priority: j.priority, target: j.target }),
        )
        const got = s.cycle(new Map(Object.entries(slots)))
        const left = { ...slots } as Record<string, number>
        for (const a of got) left[a.target]!--
        expect(Object.values(left).every((n) => n >= 0)).toBe(true)
        expect(new Set(got.map((a) => a.jobId)).size).toBe(got.length)
        const assigned = new Map(got.map((a) => [a.jobId, a.target]))
        const waiting = jobs
          .map((j, i) => ({ ...j, id: `j${i}` }))
          .filter((j) => !assigned.has(j.id))
        for (const j of jobs.map((job, i) => ({ ...job, id: `j${i}` }))) {
          const t = assigned.get(j.id)
          if (t !== undefined && j.target !== undefined) expect(t).toBe(j.target)
        }
        // Work-conserving: no slot stays empty while a job it may run waits.
        for (const j of waiting) {
          if (j.target !== undefined) expect(left[j.target]).toBe(0)
          else expect(Object.values(left).every((n) => n === 0)).toBe(true)
        }
        // A strict job left waiting on t while a flexible job took t: no other target had room.
        for (const j of waiting) {
          if (j.target === undefined) continue
          const flexibleOnT = got.some(
            (a) => a.target === j.target && jobs[Number(a.jobId.slice(1))]!.target === undefined,
          )
          if (flexibleOnT) {
            for (const [t, n] of Object.entries(left)) if (t !== j.target) expect(n).toBe(0)
          }
        }
        // Priority: nothing waits that outranks a job of the same eligibility that was placed.
        for (const j of waiting.filter((w) => w.target === undefined)) {
          for (const a of got) {
            const placed = jobs[Number(a.jobId.slice(1))]!
            if (placed.target === undefined)
              expect(placed.priority).toBeGreaterThanOrEqual(j.priority)
          }
        }
      }),
      { numRuns: 1000 },
    )
  })
})
