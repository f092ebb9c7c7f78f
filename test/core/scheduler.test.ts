import { describe, expect, it } from 'vitest'
import { FakeClock, Scheduler, ValidationError, describeWaitReason } from '../../src/index.ts'

const CACHE = 100
const DEPS = 200
const ok = { ok: true }

function setup(workers = ['w1', 'w2', 'w3']) {
  const clock = new FakeClock()
  const s = new Scheduler({ cacheTimeoutMs: CACHE, depsTimeoutMs: DEPS, clock })
  for (const w of workers) s.registerWorker(w)
  const pick = (w: string) => s.tryPickJob(w)?.job.id ?? null
  return { clock, s, pick }
}

describe('Scheduler: the seed’s queues', () => {
  it('gives a job cached on a worker to that worker first, and to any worker after CacheTimeout when it has no dependencies', () => {
    const { clock, s, pick } = setup()
    s.onJobComplete('w1', 'a', ok) // nobody scheduled it: w1 simply has it cached
    s.scheduleJob({ id: 'a' })
    expect(pick('w2')).toBeNull()
    clock.advance(CACHE - 1)
    expect(pick('w2')).toBeNull()
    // No dependency holds it in a second queue: it goes global when its first stage ends.
    clock.advance(1)
    expect(pick('w2')).toBe('a')
  })

  it('lets the worker holding the product take it at once', () => {
    const { s, pick } = setup()
    s.onJobComplete('w1', 'a', ok)
    s.scheduleJob({ id: 'a' })
    expect(pick('w1')).toBe('a')
  })

  it('gives a job whose dependency is cached on a worker to it before the global fallback', () => {
    const { clock, s, pick } = setup()
    s.onJobComplete('w2', 'dep', ok)
    s.scheduleJob({ id: 'j', deps: ['dep'] })
    // Cached nowhere when scheduled: straight into the second queues of the dependency's holders.
    expect(pick('w1')).toBeNull()
    expect(pick('w3')).toBeNull()
    clock.advance(DEPS - 1)
    expect(pick('w1')).toBeNull()
    expect(pick('w2')).toBe('j')
  })

  it('moves a job through the stages: own cache, then dependencies after CacheTimeout, then global after DepsTimeout', () => {
    const { clock, s, pick } = setup()
    s.onJobComplete('w1', 'j', ok)
    s.onJobComplete('w2', 'dep', ok)
    s.scheduleJob({ id: 'j', deps: ['dep'] })
    expect(s.explain('j')).toEqual({
      kind: 'locality',
      stage: 'cached',
      preferred: ['w1'],
      until: clock.now() + CACHE,
    })
    clock.advance(CACHE - 1)
    expect(pick('w2')).toBeNull()
    clock.advance(1)
    expect(s.explain('j')).toEqual({
      kind: 'locality',
      stage: 'deps',
      preferred: ['w2'],
      until: clock.now() + DEPS,
    })
    expect(pick('w3')).toBeNull()
    clock.advance(DEPS - 1)
    expect(pick('w3')).toBeNull()
    clock.advance(1)
    expect(s.explain('j')).toEqual({ kind: 'queued', targets: 'any' })
    expect(pick('w3')).toBe('j')
  })

  it('counts DepsTimeout from the end of the previous stage, also when the clock jumps', () => {
    const { clock, s, pick } = setup()
    s.onJobComplete('w1', 'j', ok)
    s.onJobComplete('w2', 'dep', ok)
    s.scheduleJob({ id: 'j', deps: ['dep'] })
    clock.advance(CACHE + DEPS)
    expect(pick('w3')).toBe('j')
  })

  it('sends a job with no dependencies and no cached product to the global queue at once', () => {
    const { s, pick } = setup()
    s.scheduleJob({ id: 'free' })
    expect(pick('w3')).toBe('free')
  })

  it('adds a job already in the global queue to the first queue of a worker that reports its product', () => {
    const { s, pick } = setup()
    s.scheduleJob({ id: 'old' })
    s.scheduleJob({ id: 'young' })
    s.addCached('w1', 'young')
    // At equal priority the first local queue comes before the global queue, whatever the age.
    expect(pick('w1')).toBe('young')
    expect(pick('w1')).toBe('old')
  })

  it('adds a waiting job to the second queue of a worker that reports one of its dependencies later', () => {
    const { s, pick } = setup()
    s.scheduleJob({ id: 'j', deps: ['dep'] })
    expect(pick('w3')).toBeNull()
    s.onJobComplete('w3', 'dep', ok)
    expect(pick('w1')).toBeNull()
    expect(pick('w3')).toBe('j')
  })

  it('puts a job in the same queues whether cache reports come before or after it', () => {
    // Reports of the dependencies on w1 and w3, before or after the job: the same holders pick it.
    const orders = [
      ['d1', 'd2', 'job'],
      ['job', 'd1', 'd2'],
      ['d1', 'job', 'd2'],
      ['d2', 'job', 'd1'],
    ]
    for (const order of orders) {
      const { s, pick } = setup(['w1', 'w2', 'w3'])
      for (const event of order) {
        if (event === 'job') s.scheduleJob({ id: 'j', deps: ['d1', 'd2'] })
        if (event === 'd1') s.onJobComplete('w1', 'd1', ok)
        if (event === 'd2') s.onJobComplete('w3', 'd2', ok)
      }
      expect(pick('w2')).toBeNull()
      expect(s.explain('j')).toMatchObject({ kind: 'locality', stage: 'deps' })
      expect(new Set((s.explain('j') as { preferred: string[] }).preferred)).toEqual(
        new Set(['w1', 'w3']),
      )
      expect(pick('w3')).toBe('j')
    }
  })

  it('forgets an evicted product: the job leaves that worker’s first queue', () => {
    const { clock, s, pick } = setup()
    s.onJobComplete('w1', 'j', ok)
    s.scheduleJob({ id: 'j' })
    s.removeCached('w1', 'j')
    expect(s.locateArtifact('j')).toBeUndefined()
    expect(pick('w1')).toBeNull()
    clock.advance(CACHE)
    expect(pick('w2')).toBe('j')
  })
})

describe('Scheduler: the contract', () => {
  it('schedules idempotently by id: the same pending job until it completes', () => {
    const { s, pick } = setup()
    const a = s.scheduleJob({ id: 'a' })
    expect(s.scheduleJob({ id: 'a', priority: 99 })).toBe(a)
    expect(pick('w1')).toBe('a')
    expect(s.scheduleJob({ id: 'a' })).toBe(a)
    s.onJobComplete('w1', 'a', ok)
    const again = s.scheduleJob({ id: 'a' })
    expect(again).not.toBe(a)
    // The product is on w1 now: the repeated job waits for w1 first.
    expect(pick('w2')).toBeNull()
    expect(pick('w1')).toBe('a')
  })

  it('sets result before onJobComplete returns and resolves finished with it', async () => {
    const { s } = setup()
    const pending = s.scheduleJob({ id: 'a' })
    const finished = pending.finished
    expect(s.tryPickJob('w1')).toBe(pending)
    expect(pending.worker).toBe('w1')
    const result = { ok: false, exitCode: 3, reason: 'exit-code' }
    expect(s.onJobComplete('w1', 'a', result)).toBe(true)
    expect(pending.result).toEqual(result)
    await expect(finished).resolves.toEqual(result)
    await expect(pending.finished).resolves.toEqual(result)
    // A failed job leaves no product behind.
    expect(s.locateArtifact('a')).toBeUndefined()
    expect(s.onJobComplete('w1', 'a', ok)).toBe(false)
    expect(s.locateArtifact('a')).toBe('w1')
  })

  it('finishes a waiting job when a worker reports it complete', async () => {
    const { s } = setup()
    const pending = s.scheduleJob({ id: 'a', deps: ['x'] })
    expect(s.onJobComplete('w2', 'a', ok)).toBe(true)
    await expect(pending.finished).resolves.toEqual(ok)
    expect(s.tryPickJob('w2')).toBeNull()
  })

  it('makes a waiting pick wait for a job, and wakes it when one arrives', async () => {
    const { s } = setup()
    const picked = s.pickJob('w1')
    s.scheduleJob({ id: 'late' })
    expect((await picked)?.job.id).toBe('late')
  })

  it('answers a pick with null when its signal aborts, and forgets it', async () => {
    const { s } = setup(['w1'])
    const controller = new AbortController()
    const picked = s.pickJob('w1', controller.signal)
    controller.abort()
    await expect(picked).resolves.toBeNull()
    s.scheduleJob({ id: 'a' })
    expect(s.tryPickJob('w1')?.job.id).toBe('a')
    const aborted = new AbortController()
    aborted.abort()
    await expect(s.pickJob('w1', aborted.signal)).resolves.toBeNull()
  })

  it('leaves no timer or pending pick behind after stop', async () => {
    const { clock, s } = setup()
    s.onJobComplete('w1', 'j', ok)
    s.scheduleJob({ id: 'j', deps: ['d'] })
    const picks = [s.pickJob('w2'), s.pickJob('w3')]
    expect(clock.pendingTimers()).toBe(1)
    s.stop()
    expect(clock.pendingTimers()).toBe(0)
    await expect(Promise.all(picks)).resolves.toEqual([null, null])
    await expect(s.pickJob('w1')).resolves.toBeNull()
  })

  it('answers a lost worker’s pending picks with null and forgets its cache', async () => {
    const { s } = setup()
    s.onJobComplete('w2', 'p', ok)
    const picked = s.pickJob('w2')
    s.removeWorker('w2')
    await expect(picked).resolves.toBeNull()
    expect(s.locateArtifact('p')).toBeUndefined()
  })

  it.each([
    { job: { id: '' }, error: 'id: must be a non-empty string' },
    {
      job: { id: 'a', priority: 0 },
      error: 'priority: must be a whole number from 1 to 100, got 0',
    },
    {
      job: { id: 'a', priority: 101 },
      error: 'priority: must be a whole number from 1 to 100, got 101',
    },
    { job: { id: 'a', deps: ['x', ''] }, error: 'deps[1]: must be a non-empty string' },
  ])('refuses a bad job: $error', ({ job, error }) => {
    const { s } = setup()
    expect(() => s.scheduleJob(job)).toThrow(ValidationError)
    expect(() => s.scheduleJob(job)).toThrow(error)
  })

  it('refuses negative timeouts', () => {
    expect(() => new Scheduler({ cacheTimeoutMs: -1, depsTimeoutMs: 5 })).toThrow(
      'cacheTimeoutMs: must be a number of milliseconds ≥ 0, got -1',
    )
  })
})

describe('Scheduler: priorities, strictness, resources', () => {
  it('takes the highest priority first, then the first queue, the second, the global; then the oldest', () => {
    const { s, pick } = setup()
    s.onJobComplete('w1', 'dep', ok)
    s.onJobComplete('w1', 'cached', ok)
    s.scheduleJob({ id: 'global-old' })
    s.scheduleJob({ id: 'second', deps: ['dep'] })
    s.scheduleJob({ id: 'cached' })
    s.scheduleJob({ id: 'global-young' })
    s.scheduleJob({ id: 'urgent', priority: 90 })
    s.scheduleJob({ id: 'low', priority: 10 })
    expect([1, 2, 3, 4, 5, 6].map(() => pick('w1'))).toEqual([
      'urgent',
      'cached',
      'second',
      'global-old',
      'global-young',
      'low',
    ])
  })

  it('gives a strict job to its target only', () => {
    const { s, pick } = setup()
    s.scheduleJob({ id: 'pinned', target: 'w3' })
    expect(pick('w1')).toBeNull()
    expect(pick('w2')).toBeNull()
    expect(s.explain('pinned')).toEqual({ kind: 'queued', targets: ['w3'] })
    expect(pick('w3')).toBe('pinned')
  })

  it('explains a strict job whose target is not connected, and runs it when the target comes', async () => {
    const { s } = setup()
    s.scheduleJob({ id: 'pinned', target: 'gpu-box' })
    expect(s.explain('pinned')).toEqual({ kind: 'no-eligible-target', target: 'gpu-box' })
    expect(describeWaitReason(s.explain('pinned')!)).toBe('target gpu-box is not connected')
    s.registerWorker('gpu-box')
    expect((await s.pickJob('gpu-box'))?.job.id).toBe('pinned')
  })

  it('hands out a job using a unique resource only while the resource is free, then the next', () => {
    const { s, pick } = setup()
    s.scheduleJob({ id: 'first', uses: ['gpu-1'] })
    s.scheduleJob({ id: 'second', uses: ['gpu-1'] })
    s.scheduleJob({ id: 'other' })
    expect(pick('w1')).toBe('first')
    expect(pick('w2')).toBe('other')
    expect(pick('w3')).toBeNull()
    expect(s.explain('second')).toEqual({ kind: 'resource', resource: 'gpu-1', holder: 'first' })
    s.onJobComplete('w1', 'first', ok)
    expect(pick('w3')).toBe('second')
  })

  it('takes all of a job’s resources at once', () => {
    const { s, pick } = setup()
    s.scheduleJob({ id: 'a', uses: ['r1'] })
    s.scheduleJob({ id: 'both', uses: ['r1', 'r2'] })
    s.scheduleJob({ id: 'b', uses: ['r2'] })
    expect(pick('w1')).toBe('a')
    // 'both' cannot start while r1 is held, and does not hold r2 while it waits.
    expect(pick('w2')).toBe('b')
    s.onJobComplete('w1', 'a', ok)
    expect(pick('w3')).toBeNull()
    s.onJobComplete('w2', 'b', ok)
    expect(pick('w3')).toBe('both')
  })

  it('wakes a waiting pick when a resource is freed', async () => {
    const { s } = setup()
    s.scheduleJob({ id: 'a', uses: ['lic'] })
    s.scheduleJob({ id: 'b', uses: ['lic'] })
    expect(s.tryPickJob('w1')?.job.id).toBe('a')
    const waiting = s.pickJob('w2')
    s.onJobComplete('w1', 'a', ok)
    expect((await waiting)?.job.id).toBe('b')
  })

  it('frees a cancelled job’s resources', () => {
    const { s, pick } = setup()
    s.scheduleJob({ id: 'a', uses: ['lic'] })
    s.scheduleJob({ id: 'b', uses: ['lic'] })
    expect(pick('w1')).toBe('a')
    expect(s.cancelJob('a')).toBe(true)
    expect(pick('w2')).toBe('b')
  })

  it('keeps a retry off the targets it should avoid while another could run it', () => {
    const { s, pick } = setup(['w1', 'w2'])
    s.scheduleJob({ id: 'retry', avoid: ['w1'] })
    expect(pick('w1')).toBeNull()
    expect(pick('w2')).toBe('retry')
    const solo = setup(['w1'])
    solo.s.scheduleJob({ id: 'retry', avoid: ['w1'] })
    expect(solo.pick('w1')).toBe('retry')
  })

  it('never keeps a strict job off its only target', () => {
    const { s, pick } = setup(['w1', 'w2'])
    s.scheduleJob({ id: 'pinned', target: 'w1', avoid: ['w1'] })
    expect(pick('w2')).toBeNull()
    expect(pick('w1')).toBe('pinned')
  })

  it('gives a strict-only target (the initiator) its own jobs and nothing else', () => {
    const { clock, s, pick } = setup(['w1'])
    s.registerWorker('initiator', { strictOnly: true })
    s.onJobComplete('initiator', 'made-here', ok)
    s.scheduleJob({ id: 'flexible', deps: ['made-here'] })
    s.scheduleJob({ id: 'cached', target: undefined })
    s.scheduleJob({ id: 'own', target: 'initiator' })
    expect(pick('initiator')).toBe('own')
    expect(pick('initiator')).toBeNull()
    // A retry that avoids w1 still runs there: the initiator is not another place for it.
    s.scheduleJob({ id: 'retry', avoid: ['w1'] })
    clock.advance(DEPS)
    expect([pick('w1'), pick('w1'), pick('w1')].sort()).toEqual(['cached', 'flexible', 'retry'])
  })
})

describe('Scheduler.cycle for push targets', () => {
  it('fills every free slot with eligible jobs, highest priority first', () => {
    const { s } = setup([])
    for (let i = 0; i < 5; i++) s.scheduleJob({ id: `j${i}`, priority: 10 + i })
    const got = s.cycle(
      new Map([
        ['k8s-a', 2],
        ['k8s-b', 1],
      ]),
    )
    expect(got.map((a) => a.jobId).sort()).toEqual(['j2', 'j3', 'j4'])
    expect(got.filter((a) => a.target === 'k8s-a')).toHaveLength(2)
    expect(s.cycle(new Map([['k8s-a', 5]])).map((a) => a.jobId)).toEqual(['j1', 'j0'])
  })

  it('does not let a flexible job take the only slot a strict job may use when another slot could take it', () => {
    const { s } = setup([])
    s.scheduleJob({ id: 'flexible' })
    s.scheduleJob({ id: 'strict', target: 'k8s-a' })
    const got = s.cycle(
      new Map([
        ['k8s-a', 1],
        ['k8s-b', 1],
      ]),
    )
    expect(got).toEqual([
      { jobId: 'flexible', target: 'k8s-b' },
      { jobId: 'strict', target: 'k8s-a' },
    ])
  })

  it('sends a cached job to the target that holds its product', () => {
    const { s } = setup([])
    s.onJobComplete('k8s-b', 'j', ok)
    s.scheduleJob({ id: 'j' })
    expect(
      s.cycle(
        new Map([
          ['k8s-a', 1],
          ['k8s-b', 1],
        ]),
      ),
    ).toEqual([{ jobId: 'j', target: 'k8s-b' }])
  })

  it('leaves a job in its locality delay when only other targets have slots', () => {
    const { clock, s } = setup([])
    s.onJobComplete('k8s-b', 'j', ok)
    s.scheduleJob({ id: 'j' })
    expect(s.cycle(new Map([['k8s-a', 1]]))).toEqual([])
    clock.advance(CACHE + DEPS)
    expect(s.cycle(new Map([['k8s-a', 1]]))).toEqual([{ jobId: 'j', target: 'k8s-a' }])
  })

  it('respects unique resources within one cycle', () => {
    const { s } = setup([])
    s.scheduleJob({ id: 'a', uses: ['gpu'] })
    s.scheduleJob({ id: 'b', uses: ['gpu'] })
    s.scheduleJob({ id: 'c' })
    expect(s.cycle(new Map([['k8s', 3]])).map((a) => a.jobId)).toEqual(['a', 'c'])
  })
})
