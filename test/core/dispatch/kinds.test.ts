import fc from 'fast-check'
import { afterEach, describe, expect, it } from 'vitest'
import { FakeClock, Scheduler, describeWaitReason } from '../../../src/index.ts'
import type { PendingJob } from '../../../src/index.ts'
import type { OperationKind } from '../../../src/core/model.ts'

const CACHE = 100
const DEPS = 200
let clock: FakeClock
let s: Scheduler

afterEach(() => {
  s.stop()
  expect(clock.pendingTimers()).toBe(0)
})

/** w-b runs builtins only, w-e builtins and exec, k runs images, I is the initiator. */
function setup() {
  clock = new FakeClock()
  s = new Scheduler({ cacheTimeoutMs: CACHE, depsTimeoutMs: DEPS, clock })
  s.registerWorker('w-b', { runs: ['builtin'] })
  s.registerWorker('w-e', { runs: ['builtin', 'exec'] })
  s.registerWorker('k', { runs: ['image'] })
  s.registerWorker('I', {
    strictOnly: true,
    runs: ['builtin'],
    refusal: 'the initiator runs builtins only; start the server with --initiator-exec',
  })
  return (w: string) => s.tryPickJob(w)?.job.id ?? null
}

describe('dispatch by operation kind', () => {
  it.each([
    { name: 'a builtin job goes to a builtin-only worker', op: 'builtin', picker: 'w-b', got: 'j' },
    { name: 'an exec job skips a builtin-only worker', op: 'exec', picker: 'w-b', got: null },
    { name: 'an exec job goes to a worker that runs exec', op: 'exec', picker: 'w-e', got: 'j' },
    { name: 'an image job skips workers', op: 'image', picker: 'w-e', got: null },
    { name: 'a job naming no kind goes anywhere', op: undefined, picker: 'w-b', got: 'j' },
  ] as const)('$name (pick)', ({ op, picker, got }) => {
    const pick = setup()
    s.scheduleJob({ id: 'j', ...(op === undefined ? {} : { opKind: op }) })
    expect(pick(picker)).toBe(got)
  })

  it.each([
    { name: 'strict builtin on the initiator', op: 'builtin', target: 'I', got: 'j' },
    { name: 'strict exec on the initiator', op: 'exec', target: 'I', got: null },
    { name: 'strict exec on a builtin-only worker', op: 'exec', target: 'w-b', got: null },
    { name: 'strict exec on an exec worker', op: 'exec', target: 'w-e', got: 'j' },
  ] as const)('$name', ({ op, target, got }) => {
    const pick = setup()
    s.scheduleJob({ id: 'j', opKind: op, target })
    expect(pick(target)).toBe(got)
  })

  it.each([
    {
      name: 'strict exec on the initiator',
      job: { id: 'j', opKind: 'exec', target: 'I' },
      reason: {
        kind: 'no-eligible-target',
        target: 'I',
        op: 'exec',
        refusal: 'the initiator runs builtins only; start the server with --initiator-exec',
      },
      words:
        'target I does not run exec jobs (the initiator runs builtins only; start the server with --initiator-exec)',
    },
    {
      name: 'strict exec on a builtin-only worker',
      job: { id: 'j', opKind: 'exec', target: 'w-b' },
      reason: { kind: 'no-eligible-target', target: 'w-b', op: 'exec' },
      words: 'target w-b does not run exec jobs',
    },
    {
      name: 'a flexible job of a kind nobody runs',
      job: { id: 'j', opKind: 'exec' },
      lose: ['w-e'],
      reason: { kind: 'no-eligible-target', op: 'exec' },
      words: 'no connected target runs exec jobs',
    },
    {
      name: 'a flexible job some target runs',
      job: { id: 'j', opKind: 'exec' },
      reason: { kind: 'queued', targets: 'any' },
      words: 'queued for the next free slot',
    },
  ] as const)('explains $name', ({ job, reason, words, ...rest }) => {
    setup()
    const lose: readonly string[] = ('lose' in rest ? rest.lose : undefined) ?? []
    for (const w of lose) s.removeWorker(w)
    s.scheduleJob(job)
    expect(s.explain('j')).toEqual(reason)
    expect(describeWaitReason(s.explain('j')!)).toBe(words)
  })

  it('lets a builtin-only worker take the builtin job behind higher exec jobs, and leaves those waiting', () => {
    const pick = setup()
    for (let i = 0; i < 5; i++) s.scheduleJob({ id: `e${i}`, opKind: 'exec', priority: 90 })
    s.scheduleJob({ id: 'b', opKind: 'builtin', priority: 10 })
    expect(pick('w-b')).toBe('b')
    expect(pick('w-b')).toBeNull()
    expect(pick('w-e')).toBe('e0')
  })

  it('gives the initiator its builtin jobs behind a refused exec job, and the exec job once it runs exec', () => {
    const pick = setup()
    s.scheduleJob({ id: 'x', opKind: 'exec', target: 'I', priority: 90 })
    s.scheduleJob({ id: 'b', opKind: 'builtin', target: 'I' })
    expect(pick('I')).toBe('b')
    expect(pick('I')).toBeNull()
    s.registerWorker('I', { strictOnly: true, runs: ['builtin', 'exec'] })
    expect(pick('I')).toBe('x')
  })

  it('answers a waiting pick once the worker registers again with the kind', async () => {
    setup()
    s.scheduleJob({ id: 'x', opKind: 'exec', target: 'w-b' })
    const waiting = s.pickJob('w-b')
    s.registerWorker('w-b', { runs: ['builtin', 'exec'] })
    expect((await waiting)?.job.id).toBe('x')
  })

  it('keeps a cached exec job off the local queue of a builtin-only holder', () => {
    const pick = setup()
    s.onJobComplete('w-b', 'j', { ok: true })
    s.scheduleJob({ id: 'j', opKind: 'exec' })
    expect(pick('w-b')).toBeNull()
    clock.advance(CACHE)
    expect(pick('w-b')).toBeNull()
    expect(pick('w-e')).toBe('j')
  })

  it('fills push slots only with jobs of the kinds each target runs', () => {
    setup()
    s.scheduleJob({ id: 'e', opKind: 'exec' })
    s.scheduleJob({ id: 'i', opKind: 'image' })
    s.scheduleJob({ id: 'x', opKind: 'exec', target: 'I' })
    s.scheduleJob({ id: 'b', opKind: 'builtin', target: 'I' })
    const got = s.cycle(
      new Map([
        ['k', 4],
        ['I', 4],
      ]),
    )
    expect(got.sort((a, b) => a.jobId.localeCompare(b.jobId))).toEqual([
      { jobId: 'b', target: 'I' },
      { jobId: 'i', target: 'k' },
    ])
  })

  it('sends a retry that avoids the only exec worker back to it, as no other target runs exec', () => {
    const pick = setup()
    s.scheduleJob({ id: 'j', opKind: 'exec', avoid: ['w-e'] })
    expect(pick('w-b')).toBeNull()
    expect(pick('w-e')).toBe('j')
  })

  it('checks the kind a job names', () => {
    setup()
    expect(() => s.scheduleJob({ id: 'j', opKind: 'shell' as OperationKind })).toThrow(
      'opKind: must be one of builtin, exec, image, got shell',
    )
  })
})

const KINDS = ['builtin', 'exec', 'image'] as const
const WORKERS = ['w1', 'w2', 'w3']
const IDS = Array.from({ length: 20 }, (_, i) => `j${i}`)

const action = fc.oneof(
  fc.record({
    kind: fc.constant('schedule' as const),
    id: fc.constantFrom(...IDS),
    op: fc.constantFrom(...KINDS),
    deps: fc.subarray(IDS, { maxLength: 2 }),
    priority: fc.integer({ min: 1, max: 100 }),
    target: fc.option(fc.constantFrom(...WORKERS, 'k'), { nil: undefined, freq: 3 }),
    avoid: fc.subarray(WORKERS, { maxLength: 2 }),
  }),
  fc.record({ kind: fc.constant('pick' as const), worker: fc.constantFrom(...WORKERS) }),
  fc.record({
    kind: fc.constant('register' as const),
    worker: fc.constantFrom(...WORKERS),
    runs: fc.subarray([...KINDS], { minLength: 1 }),
  }),
  fc.record({ kind: fc.constant('complete' as const), which: fc.nat() }),
  fc.record({
    kind: fc.constant('cache' as const),
    worker: fc.constantFrom(...WORKERS),
    id: fc.constantFrom(...IDS),
  }),
  fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 1, max: 250 }) }),
  fc.record({ kind: fc.constant('cycle' as const), k: fc.integer({ min: 0, max: 3 }) }),
)

describe('dispatch by kind under random operations', () => {
  it('never hands a job to a target that does not run its kind, nor twice; and every job some target runs is taken', () => {
    fc.assert(
      fc.property(
        fc.array(action, { minLength: 1, maxLength: 100 }),
        fc.array(fc.subarray([...KINDS], { minLength: 1 }), { minLength: 3, maxLength: 3 }),
        (actions, initial) => {
          clock = new FakeClock()
          s = new Scheduler({ cacheTimeoutMs: CACHE, depsTimeoutMs: DEPS, clock })
          const runs = new Map<string, readonly OperationKind[]>([['k', ['image']]])
          const register = (w: string, kinds: readonly OperationKind[]) => {
            runs.set(w, kinds)
            s.registerWorker(w, { runs: kinds })
          }
          WORKERS.forEach((w, i) => register(w, initial[i]!))
          register('k', ['image'])
          const handed = new Set<PendingJob>()
          const scheduled = new Set<PendingJob>()
          const hand = (p: PendingJob | null | undefined, target: string) => {
            if (p === null || p === undefined) return
            expect(handed.has(p)).toBe(false)
            expect(runs.get(target)).toContain(p.job.opKind)
            handed.add(p)
          }
          for (const a of actions) {
            switch (a.kind) {
              case 'schedule': {
                const { kind: _k, op, ...job } = a
                scheduled.add(s.scheduleJob({ ...job, opKind: op }))
                break
              }
              case 'pick':
                hand(s.tryPickJob(a.worker), a.worker)
                break
              case 'register':
                register(a.worker, a.runs)
                break
              case 'complete': {
                const now = [...handed].filter((p) => p.result === undefined)
                if (now.length === 0) break
                const p = now[a.which % now.length]!
                s.onJobComplete(p.worker!, p.job.id, { ok: true })
                break
              }
              case 'cache':
                s.addCached(a.worker, a.id)
                break
              case 'advance':
                clock.advance(a.ms)
                break
              case 'cycle':
                for (const x of s.cycle(new Map([['k', a.k]]))) hand(s.get(x.jobId), x.target)
                break
            }
          }
          // Liveness: once the locality stages are over, every waiting job a target may run is
          // taken by picks and cycles; the rest say which kind nobody runs.
          clock.advance(CACHE + DEPS)
          for (let round = 0; round < IDS.length; round++) {
            for (const w of WORKERS) hand(s.tryPickJob(w), w)
            for (const x of s.cycle(new Map([['k', 20]]))) hand(s.get(x.jobId), x.target)
          }
          for (const p of scheduled) {
            if (p.worker !== undefined || p.result !== undefined) continue
            const job = p.job
            const where = job.target === undefined ? [...runs.keys()] : [job.target]
            const runnable = where.some((t) => runs.get(t)!.includes(job.opKind!))
            expect(runnable, `${job.id} (${job.opKind}) still waits`).toBe(false)
            expect(s.explain(job.id)).toMatchObject({ kind: 'no-eligible-target' })
          }
          s.stop()
        },
      ),
      { numRuns: 300 },
    )
  })
})
