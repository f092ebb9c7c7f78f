/**
 * The scheduler service on both backends: answers only once a change is stored, shares commits
 * between concurrent calls, and carries on after a restart from what it stored.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { FakeClock, LockstepError } from '../../src/index.ts'
import { SchedulerService } from '../../src/service/service.ts'
import type { Store } from '../../src/store/store.ts'
import { checkLeaks } from '../leaks.ts'
import { backends } from '../store/backends.ts'
import type { Backend } from '../store/backends.ts'

const op = { builtin: 'noop' }
const LEASE = 1000

const opened = checkLeaks()

describe.each(backends)('scheduler service: %s', (_name, make) => {
  let backend: Backend
  const services: SchedulerService[] = []

  afterEach(async () => {
    for (const s of services.splice(0)) await s.close()
    await backend.destroy()
  })

  async function start(clock = new FakeClock(), store: Store = backend.open()) {
    const service = await SchedulerService.start({
      store,
      clock,
      engine: { leaseMs: LEASE, cacheTimeoutMs: 10, depsTimeoutMs: 10 },
    })
    services.push(opened.service(service, { clock }))
    return service
  }

  /** Drops a service as a crash would: nothing more is written, nothing is flushed. */
  async function crash(service: SchedulerService): Promise<void> {
    services.splice(services.indexOf(service), 1)
    opened.forget(service)
    service.abandon()
    await service.store.close()
  }

  it('answers a submission only once another handle on the store can read it', async () => {
    backend = make('durable')
    const service = await start()
    const order = await service.submitPacket({ name: 'p', jobs: [{ name: 'a', op }] }, {}, 'ana')
    const other = backend.open()
    try {
      expect(await other.order(order.orderId)).toMatchObject({
        order: { state: 'running' },
        counts: { ready: 1 },
      })
    } finally {
      await other.close()
    }
  })

  it('shares one commit between calls that arrive together', async () => {
    backend = make('group')
    const store = backend.open()
    let commits = 0
    const commit = store.commit.bind(store)
    store.commit = (batch) => {
      commits++
      return commit(batch)
    }
    const service = await start(new FakeClock(), store)
    commits = 0
    const orders = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        service.submitPacket({ name: `p${i}`, jobs: [{ name: 'a', op }] }, {}, 'ana'),
      ),
    )
    expect(new Set(orders.map((o) => o.orderId)).size).toBe(50)
    expect(commits).toBeLessThanOrEqual(2)
  })

  it('a worker receives a job with its start stored, and its result is taken once', async () => {
    backend = make('heartbeat')
    const service = await start()
    await service.registerTarget({ id: 'w1', slots: 2 })
    const order = await service.submitPacket(
      {
        name: 'p',
        jobs: [
          { name: 'a', op },
          { name: 'b', op, after: ['a'] },
        ],
      },
      {},
      'ana',
    )
    const first = await service.heartbeat('w1', { free: 2 })
    expect(first.assignments.map((a) => a.name)).toEqual(['a'])
    const a = first.assignments[0]!
    const other = backend.open()
    try {
      expect((await other.attempts(a.jobId)).map((f) => f.state)).toEqual(['running'])
    } finally {
      await other.close()
    }
    const result = { jobId: a.jobId, attempt: 1, result: { ok: true } }
    const second = await service.heartbeat('w1', { results: [result], free: 1 })
    expect(second.assignments.map((x) => x.name)).toEqual(['b'])
    const again = await service.heartbeat('w1', { results: [result] })
    expect(again.refused).toMatchObject([{ jobId: a.jobId, code: 'STALE_ATTEMPT' }])
    const b = second.assignments[0]!
    await service.heartbeat('w1', {
      results: [{ jobId: b.jobId, attempt: 1, result: { ok: true } }],
    })
    expect((await service.fulfilment(order.orderId)).state).toBe('succeeded')
    await expect(service.heartbeat('w9')).rejects.toThrow(LockstepError)
  })

  it('tells a worker, once, to stop an attempt that was cancelled or timed out', async () => {
    backend = make('stops')
    const clock = new FakeClock()
    const service = await start(clock)
    await service.registerTarget({ id: 'w1', slots: 2 })
    await service.submitPacket(
      {
        name: 'p',
        jobs: [
          { name: 'a', op },
          { name: 't', op, timeoutMs: 100 },
        ],
      },
      {},
      'ana',
    )
    const { assignments } = await service.heartbeat('w1', { free: 2 })
    const [a, t] = ['a', 't'].map((name) => assignments.find((x) => x.name === name)!)
    await service.cancelJob(a!.jobId, 'cancelled by ana')
    expect((await service.heartbeat('w1')).stop).toEqual([
      { jobId: a!.jobId, attempt: 1, reason: 'cancelled by ana' },
    ])
    clock.advance(100)
    expect((await service.heartbeat('w1')).stop).toEqual([
      { jobId: t!.jobId, attempt: 1, reason: 'timeout' },
    ])
    expect((await service.heartbeat('w1')).stop).toEqual([])
  })

  it('answers a waiting heartbeat at once with a stop that came while it stored its input', async () => {
    backend = make('wake-stop')
    // A long lease, so a long poll that nothing wakes would wait 10 s.
    const service = await SchedulerService.start({
      store: backend.open(),
      engine: { leaseMs: 20_000 },
    })
    services.push(opened.service(service))
    await service.registerTarget({ id: 'w1', slots: 1 })
    const order = await service.submitPacket({ name: 'p', jobs: [{ name: 'a', op }] }, {}, 'ana')
    const [a] = (await service.heartbeat('w1', { free: 1 })).assignments
    const waiting = service.heartbeat('w1', { waitMs: 20_000 })
    await service.cancelOrder(order.orderId)
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), 3000)))
    const reply = await Promise.race([waiting, late]).finally(() => clearTimeout(timer))
    expect(reply).toEqual({
      assignments: [],
      refused: [],
      stop: [{ jobId: a!.jobId, attempt: 1, reason: 'order cancelled' }],
    })
    await waiting
  })

  it('wakes every waiting heartbeat for a ready job, but answers only the one that takes it', async () => {
    backend = make('herd')
    const service = await SchedulerService.start({
      store: backend.open(),
      engine: { leaseMs: 20_000 },
    })
    services.push(opened.service(service))
    const ids = ['w1', 'w2', 'w3', 'w4', 'w5']
    for (const id of ids) await service.registerTarget({ id, slots: 1 })
    const answered: string[] = []
    const polls = ids.map((id) =>
      service.heartbeat(id, { free: 1, waitMs: 1500 }).then((reply) => {
        answered.push(`${id}:${reply.assignments.length}`)
        return reply
      }),
    )
    await new Promise((r) => setTimeout(r, 100))
    await service.submitPacket({ name: 'p', jobs: [{ name: 'a', op }] }, {}, 'ana')
    await expect.poll(() => answered).toHaveLength(1)
    // The others were woken too, found nothing for themselves, and wait on: none answers empty
    // until its time is up.
    await new Promise((r) => setTimeout(r, 300))
    expect(answered).toHaveLength(1)
    expect(answered[0]).toMatch(/^w\d:1$/)
    const replies = await Promise.all(polls)
    expect(replies.map((r) => r.assignments.length).sort()).toEqual([0, 0, 0, 0, 1])
  })

  it('carries on after a crash: running attempts, locks, resources and caches come back', async () => {
    backend = make('recover')
    const clock = new FakeClock()
    const first = await start(clock)
    await first.registerTarget({ id: 'w1', slots: 4 })
    await first.registerTarget({ id: 'w2', slots: 4 })
    const order = await first.submitPacket(
      {
        name: 'p',
        resources: [{ key: 'gpu', value: '0', unique: true }],
        jobs: [
          { name: 'a', op },
          { name: 'b', op, after: ['a'], uses: ['gpu'], target: 'w1' },
          { name: 'c', op, after: ['b'] },
          { name: 'd', op, uses: ['gpu'], target: 'w2' },
          { name: 'e', op, failure: { attempts: 2, backoffMs: 0 }, target: 'w2' },
        ],
      },
      {},
      'ana',
    )
    const [a] = (await first.heartbeat('w1', { free: 1 })).assignments
    const done = { jobId: a!.jobId, attempt: 1, result: { ok: true } }
    const [b] = (await first.heartbeat('w1', { results: [done], free: 4 })).assignments
    expect(b!.name).toBe('b')
    const [e] = (await first.heartbeat('w2', { free: 1 })).assignments
    expect(e!.name).toBe('e')
    await crash(first)

    const second = await start(clock)
    expect((await second.fulfilment(order.orderId)).counts).toMatchObject({
      succeeded: 1,
      running: 2,
      ready: 1,
      waiting: 1,
    })
    // The unique resource is still held by b, so d waits.
    const d = (await second.jobs(order.orderId))[3]!
    expect(second.explain(d.id)).toEqual({
      kind: 'resource',
      resource: 'gpu',
      holder: b!.jobId,
    })
    // w1 comes back within its grace period and finishes b; w2 never does, so e is lost and retried.
    clock.advance(LEASE / 2)
    const afterB = await second.heartbeat('w1', {
      results: [{ jobId: b!.jobId, attempt: 1, result: { ok: true } }],
      free: 4,
    })
    expect(afterB.assignments.map((x) => x.name)).toEqual(['c'])
    expect(afterB.assignments[0]!.inputs).toEqual([
      {
        jobId: b!.jobId,
        productId: b!.jobId,
        name: 'b',
        holders: ['w1'],
        capability: expect.stringMatching(/^[\w-]+\.[\w-]+$/) as unknown,
      },
    ])
    clock.advance(LEASE / 2)
    await second.heartbeat('w1')
    await second.durable()
    expect((await second.attempts(e!.jobId)).map((f) => [f.state, f.reason])).toEqual([
      ['failed', 'worker-lost'],
    ])
    await crash(second)

    const third = await start(clock)
    await third.registerTarget({ id: 'w2', slots: 4 })
    const c = afterB.assignments[0]!
    const last = await third.heartbeat('w2', { free: 4 })
    expect(last.assignments.map((x) => x.name).sort()).toEqual(['d', 'e'])
    await third.heartbeat('w1', { results: [{ jobId: c.jobId, attempt: 1, result: { ok: true } }] })
    await third.heartbeat('w2', {
      results: last.assignments.map((x) => ({
        jobId: x.jobId,
        attempt: x.attempt,
        result: { ok: true },
      })),
    })
    const f = await third.fulfilment(order.orderId)
    expect(f).toMatchObject({ state: 'succeeded', counts: { succeeded: 5 } })
    const locks = await third.store.locks(order.orderId)
    expect(locks.every((l) => l.released)).toBe(true)
  })

  it('stops taking work when a commit fails, and says why', async () => {
    backend = make('fatal')
    const store = backend.open()
    let fatal: unknown
    const service = await SchedulerService.start({ store, onFatal: (e) => (fatal = e) })
    services.push(opened.service(service))
    store.commit = () => Promise.reject(new Error('disk full'))
    await expect(
      service.submitPacket({ name: 'p', jobs: [{ name: 'a', op }] }, {}, 'x'),
    ).rejects.toThrow(/stopped after a failed commit: disk full/)
    expect((fatal as Error).message).toBe('disk full')
    await expect(
      service.createPacket({ name: 'q', jobs: [{ name: 'a', op }] }, 'x'),
    ).rejects.toThrow(/UNAVAILABLE|stopped/)
  })
})
