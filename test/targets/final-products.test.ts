/**
 * Final products come home: when an order succeeds, the products of its last jobs (no lock leads
 * out of them; for an artifact, in its last step) are fetched into the scheduler's own cache and
 * reported there, a few at a time; a fetch that keeps failing is given up after a bounded number
 * of tries, and the order stays succeeded whatever happens.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { Assignment } from '../../src/core/protocol.ts'
import type { CacheChanges } from '../../src/service/service.ts'
import { SchedulerService } from '../../src/service/service.ts'
import { SqliteStore } from '../../src/store/sqlite-store.ts'
import { FinalProducts, lastJobs } from '../../src/targets/final-products.ts'
import type { ProductHome } from '../../src/targets/final-products.ts'
import { PushLoop } from '../../src/targets/push-loop.ts'
import type { AttemptOutcome, TargetDriver } from '../../src/targets/target-driver.ts'

describe('lastJobs', () => {
  const j = (id: string, step?: number) => (step === undefined ? { id } : { id, step })
  it.each([
    ['a chain ends in its last job', [j('a'), j('b')], [['a', 'b']], ['b']],
    [
      'a fork ends in both branches',
      [j('a'), j('b'), j('c')],
      [
        ['a', 'b'],
        ['a', 'c'],
      ],
      ['b', 'c'],
    ],
    ['a lone job is its own end', [j('a')], [], ['a']],
    // Before a `none` distribution no lock leads out of a step, but its products are not final.
    ['an artifact ends in its last step', [j('a', 0), j('b', 1), j('c', 1)], [], ['b', 'c']],
    [
      'an iterate step ends in its last iteration',
      [j('i1', 0), j('w1', 0), j('i2', 0), j('w2', 0)],
      [
        ['i1', 'w1'],
        ['w1', 'i2'],
        ['i2', 'w2'],
      ],
      ['w2'],
    ],
  ])('%s', (_name, jobs, locks, expected) => {
    const got = lastJobs(
      jobs,
      locks.map(([jobId, nextId]) => ({ jobId: jobId!, nextId: nextId! })),
    )
    expect(got.map((x) => x.id)).toEqual(expected)
  })
})

/**
 * A push target that runs every attempt at once, keeping its product as a worker would (a
 * cluster keeps none: its jobs' products never come home).
 */
class InstantDriver implements TargetDriver {
  readonly id = 'push-a'
  readonly registration = { id: 'push-a', slots: 16, runs: ['builtin' as const] }
  availability(): number {
    return 16
  }
  start(a: Assignment): Promise<AttemptOutcome> {
    return Promise.resolve({
      result: { ok: true, productHash: 'a'.repeat(64) },
      added: [a.productId],
    })
  }
  stop(): void {}
  close(): Promise<void> {
    return Promise.resolve()
  }
}

/** The scheduler's cache as the test sees it: fetches wait until the test lets them through. */
class HeldHome implements ProductHome {
  readonly id: string
  readonly held = new Set<string>()
  readonly tried: string[] = []
  inFlight = 0
  most = 0
  fails = false
  private readonly waiting: (() => void)[] = []

  constructor(id: string) {
    this.id = id
  }

  holds(productId: string): boolean {
    return this.held.has(productId)
  }

  async fetch(productId: string): Promise<CacheChanges> {
    this.tried.push(productId)
    this.inFlight++
    this.most = Math.max(this.most, this.inFlight)
    await new Promise<void>((r) => this.waiting.push(r))
    this.inFlight--
    if (this.fails) throw new Error('no holder answers')
    this.held.add(productId)
    return { added: [productId] }
  }

  /** Lets every waiting fetch end; true if there was one. */
  release(): boolean {
    const w = this.waiting.splice(0)
    for (const r of w) r()
    return w.length > 0
  }
}

let dir: string
let service: SchedulerService
let loop: PushLoop
let finals: FinalProducts | undefined

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'lockstep-final-'))
  service = await SchedulerService.start({
    store: new SqliteStore({ path: join(dir, 'db') }),
    engine: { cacheTimeoutMs: 0, depsTimeoutMs: 0 },
  })
  loop = new PushLoop(service, [new InstantDriver()], { idleMs: 20 })
  await loop.start()
})

afterEach(async () => {
  await finals?.close()
  finals = undefined
  await loop.close()
  await service.close()
  rmSync(dir, { recursive: true, force: true })
})

/** Submits a packet and resolves once it has succeeded (the event is stored). */
async function succeeded(jobs: { name: string; after?: string[] }[]): Promise<string> {
  const ended = new Promise<string>((resolve) => {
    const off = service.on((e) => {
      if (e.type === 'order:succeeded') {
        off()
        resolve(e.orderId)
      }
    })
  })
  await service.submitPacket(
    { name: 'p', jobs: jobs.map((j) => ({ ...j, op: { builtin: 'noop' } })) },
    {},
    'ana',
  )
  return ended
}

/** Releases the home's fetches until `done` holds. */
async function settle(home: HeldHome, done: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !done(); i++) {
    home.release()
    await new Promise((r) => setTimeout(r, 5))
  }
  expect(done()).toBe(true)
}

describe('FinalProducts', () => {
  it('brings the last jobs’ products home and reports the scheduler as their holder', async () => {
    const home = new HeldHome(service.initiator)
    const fetched: string[] = []
    finals = new FinalProducts(service, home, { onFetched: (id) => fetched.push(id) })
    finals.start()
    const orderId = await succeeded([
      { name: 'a' },
      { name: 'b', after: ['a'] },
      { name: 'c', after: ['a'] },
    ])
    const [a, b, c] = await service.jobs(orderId)
    await settle(home, () => fetched.length === 2)
    expect(home.tried.sort()).toEqual([b!.id, c!.id].sort())
    for (const job of [b!, c!]) {
      expect(service.holders(job.id).map((h) => h.target)).toContain(service.initiator)
    }
    expect(service.holders(a!.id).map((h) => h.target)).toEqual(['push-a'])
  })

  it('fetches a few at a time', async () => {
    const home = new HeldHome(service.initiator)
    const fetched: string[] = []
    finals = new FinalProducts(service, home, {
      concurrency: 2,
      onFetched: (id) => fetched.push(id),
    })
    finals.start()
    await succeeded(['a', 'b', 'c', 'd', 'e', 'f'].map((name) => ({ name })))
    await settle(home, () => fetched.length === 6)
    expect(home.most).toBe(2)
  })

  it('gives a failing fetch up after its tries, and the order stays succeeded', async () => {
    const home = new HeldHome(service.initiator)
    home.fails = true
    const errors: string[] = []
    finals = new FinalProducts(service, home, {
      attempts: 3,
      retryMs: 1,
      onError: (m) => errors.push(m),
    })
    finals.start()
    const orderId = await succeeded([{ name: 'a' }])
    await settle(home, () => errors.some((m) => m.includes('gave up')))
    expect(home.tried).toHaveLength(3)
    expect(errors).toHaveLength(3)
    expect(errors[2]).toMatch(/gave up bringing product .* home after 3 tries: no holder answers/)
    expect((await service.fulfilment(orderId)).state).toBe('succeeded')
  })
})
