/**
 * Cache announcements are checked: a worker is taken to hold a product only if it made it, the
 * store already says it holds it, it was sent to fetch it as an input (with a known hash), or it
 * held it when it was lost and registers again with it (with a known hash). A
 * planted product is ignored (never an error that breaks the heartbeat), counted and logged, and
 * so neither satisfies a cache key nor appears among the holders consumers are sent to.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { FakeClock } from '../../src/index.ts'
import type { Assignment } from '../../src/core/protocol.ts'
import { SchedulerService } from '../../src/service/service.ts'
import { checkLeaks } from '../leaks.ts'
import { backends } from '../store/backends.ts'
import type { Backend } from '../store/backends.ts'

const op = { builtin: 'noop' }
const HASH = 'e'.repeat(64)
const LIB = 'cache:lib@1'

const opened = checkLeaks()

describe.each(backends)('cache announcements: %s', (_name, make) => {
  let backend: Backend
  const services: SchedulerService[] = []

  afterEach(async () => {
    for (const s of services.splice(0)) await s.close()
    await backend.destroy()
  })

  async function start(name: string) {
    backend = make(name)
    const clock = new FakeClock()
    const service = await SchedulerService.start({
      store: backend.open(),
      clock,
      engine: { leaseMs: 1000, cacheTimeoutMs: 10, depsTimeoutMs: 10 },
    })
    services.push(opened.service(service, { clock }))
    return { service, clock }
  }

  /** Orders one job with the cache key `lib@1` (and optionally a reader of it strict to a target). */
  function orderLib(service: SchedulerService, readerOn?: string) {
    const jobs: object[] = [{ name: 'lib', op, cache: 'lib@1' }]
    if (readerOn !== undefined) jobs.push({ name: 'use', op, after: ['lib'], target: readerOn })
    return service.submitPacket({ name: 'lib', jobs }, {}, 'ana')
  }

  /** The one job a worker is handed on a heartbeat with one free slot. */
  async function take(service: SchedulerService, worker: string): Promise<Assignment> {
    const [a] = (await service.heartbeat(worker, { free: 1 })).assignments
    expect(a, `${worker} is handed a job`).toBeDefined()
    return a!
  }

  async function refusals(service: SchedulerService) {
    await service.durable()
    const events = await service.store.events(0, 1000)
    return events
      .filter((e) => e.type === 'cache:refused')
      .map((e) => JSON.parse(e.body) as unknown)
  }

  it('ignores a product planted at registration or in a heartbeat', async () => {
    const { service } = await start('planted')
    await service.registerTarget({ id: 'evil', cached: [LIB] })
    await service.registerTarget({ id: 'good' })
    const reply = await service.heartbeat('evil', { added: [LIB, 'made-up'] })
    expect(reply.refused).toEqual([])
    expect(service.holders(LIB)).toEqual([])

    // The cache-keyed job runs: nothing it could be taken from is believed.
    const order = await orderLib(service)
    expect(service.stats().jobs).toMatchObject({ ready: 1, succeeded: 0 })
    const a = await take(service, 'good')
    expect(a.orderId).toBe(order.orderId)
    expect(service.stats()).toMatchObject({ refusedAnnouncements: 3 })
    expect(await refusals(service)).toEqual([
      { targetId: 'evil', productIds: [LIB], during: 'registration' },
      { targetId: 'evil', productIds: [LIB, 'made-up'], during: 'heartbeat' },
    ])
  })

  it('believes the maker, and a reader that was sent to fetch the product', async () => {
    const { service } = await start('believed')
    for (const id of ['maker', 'reader', 'evil']) await service.registerTarget({ id })
    const first = await orderLib(service, 'reader')
    const lib = await take(service, 'maker')
    await service.heartbeat('maker', {
      results: [{ jobId: lib.jobId, attempt: 1, result: { ok: true, productHash: HASH } }],
      added: [LIB],
    })
    expect(service.holders(LIB).map((h) => h.target)).toEqual(['maker'])
    const use = await take(service, 'reader')
    expect(use.inputs).toEqual([
      {
        jobId: lib.jobId,
        productId: LIB,
        name: 'lib',
        holders: ['maker'],
        hash: HASH,
        capability: expect.any(String) as string,
      },
    ])
    await service.heartbeat('reader', {
      results: [{ jobId: use.jobId, attempt: 1, result: { ok: true, productHash: HASH } }],
      added: [LIB],
    })
    await service.heartbeat('evil', { added: [LIB] })
    expect(service.holders(LIB).map((h) => h.target)).toEqual(['maker', 'reader'])
    expect(service.stats()).toMatchObject({ refusedAnnouncements: 1 })
    expect((await service.fulfilment(first.orderId)).state).toBe('succeeded')

    // Its hash is known, so the key is satisfied without running, and the store says so.
    const again = await orderLib(service)
    expect((await service.fulfilment(again.orderId)).state).toBe('succeeded')
    await service.durable()
    const stored = (await service.store.load()).products.filter((p) => p.productId === LIB)
    expect(stored.map((p) => [p.targetId, p.hash]).sort()).toEqual([
      ['maker', HASH],
      ['reader', HASH],
    ])
  })

  it('satisfies no cache key with a product whose maker reported no hash', async () => {
    const { service } = await start('hashless')
    await service.registerTarget({ id: 'w1' })
    await orderLib(service)
    const lib = await take(service, 'w1')
    await service.heartbeat('w1', {
      results: [{ jobId: lib.jobId, attempt: 1, result: { ok: true } }],
    })
    expect(service.holders(LIB).map((h) => h.target)).toEqual(['w1'])
    await orderLib(service)
    const again = await take(service, 'w1')
    expect(again.jobId).not.toBe(lib.jobId)
  })

  it('believes a registration for what the store says the worker holds, and what it held when lost', async () => {
    const { service, clock } = await start('registration')
    await service.registerTarget({ id: 'w1' })
    await orderLib(service)
    const lib = await take(service, 'w1')
    await service.heartbeat('w1', {
      results: [{ jobId: lib.jobId, attempt: 1, result: { ok: true, productHash: HASH } }],
    })
    // Registered again (an agent restart within its lease): it still holds what it made.
    await service.registerTarget({ id: 'w1', cached: [LIB] })
    expect(service.holders(LIB).map((h) => h.target)).toEqual(['w1'])
    expect(service.stats()).toMatchObject({ refusedAnnouncements: 0 })
    // Lost, it holds nothing; restarted on its cache, it holds again what it held then (its hash
    // is known, so every reader checks its copy), and nothing else it claims.
    clock.advance(2000)
    expect(service.holders(LIB)).toEqual([])
    await service.registerTarget({ id: 'w1', cached: [LIB, 'cache:planted@1'] })
    expect(service.holders(LIB).map((h) => h.target)).toEqual(['w1'])
    expect(service.holders('cache:planted@1')).toEqual([])
    expect(service.stats()).toMatchObject({ refusedAnnouncements: 1 })
    await service.durable()
    const stored = (await service.store.load()).products.filter((p) => p.productId === LIB)
    expect(stored.map((p) => [p.targetId, p.hash])).toEqual([['w1', HASH]])
    // Lost again and back without it: it is gone, and a later claim is not taken.
    clock.advance(2000)
    await service.registerTarget({ id: 'w1' })
    await service.registerTarget({ id: 'w1', cached: [LIB] })
    expect(service.holders(LIB)).toEqual([])
    expect(service.stats()).toMatchObject({ refusedAnnouncements: 2 })
  })

  it('takes no product without a hash back from a worker that was lost', async () => {
    const { service, clock } = await start('hashless-lost')
    await service.registerTarget({ id: 'w1' })
    await orderLib(service)
    const lib = await take(service, 'w1')
    await service.heartbeat('w1', {
      results: [{ jobId: lib.jobId, attempt: 1, result: { ok: true } }],
    })
    clock.advance(2000)
    await service.registerTarget({ id: 'w1', cached: [LIB] })
    expect(service.holders(LIB)).toEqual([])
  })
})
