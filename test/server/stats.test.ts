/**
 * The dashboard's figures over loopback with a real store on both backends: `GET /v1/stats`
 * (the metrics' numbers, with the global queue), `GET /v1/targets` with each target's queues
 * and last heartbeat, `GET /v1/stats/history` growing one point per interval on the service's
 * clock and bounded to the last hour, and a waiting job's reason in words.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { LockstepClient } from '../../src/client/client.ts'
import { FakeClock } from '../../src/core/clock.ts'
import { SchedulerService } from '../../src/service/service.ts'
import { startServer } from '../../src/server/server.ts'
import type { RunningServer } from '../../src/server/server.ts'
import { checkLeaks } from '../leaks.ts'
import { backends } from '../store/backends.ts'
import type { Backend } from '../store/backends.ts'

const opened = checkLeaks()
const op = { builtin: 'noop' }

describe.each(backends)('the dashboard figures: %s', (_name, make) => {
  let backend: Backend
  let clock: FakeClock
  let service: SchedulerService
  let server: RunningServer
  const as = (token: string) => new LockstepClient({ url: server.url, token })
  const get = <T>(path: string) => as('vera-token-1').request<T>('GET', path)

  beforeEach(async () => {
    backend = make('stats')
    clock = new FakeClock(Date.UTC(2025, 0, 2, 12, 0, 0))
    service = opened.service(await SchedulerService.start({ store: backend.open(), clock }), {
      clock,
    })
    server = opened.server(
      await startServer({
        service,
        port: 0,
        tokens: [
          { role: 'workbench', name: 'ana', token: 'ana-token-1' },
          { role: 'viewer', name: 'vera', token: 'vera-token-1' },
          { role: 'worker', name: 'w1', token: 'worker-token-1' },
        ],
      }),
    )
  })

  afterEach(async () => {
    await server.close()
    await service.close()
    await backend.destroy()
  })

  it('shows jobs, queues, orders and targets; each target its queues and last heartbeat', async () => {
    await as('ana-token-1').submit({
      packet: {
        name: 'p',
        jobs: [
          { name: 'a', op },
          { name: 'b', op, after: ['a'] },
        ],
      },
    })
    expect(await get('/v1/stats')).toEqual({
      jobs: { waiting: 1, ready: 1, running: 0, succeeded: 0, failed: 0, skipped: 0, cancelled: 0 },
      queues: { global: 1, waiting: 1 },
      orders: 1,
      // The initiator, the scheduler's own target, is live from the start.
      targets: 1,
    })
    const worker = as('worker-token-1')
    await worker.register({ id: 'w1', slots: 1 })
    clock.advance(500)
    const [a] = (await worker.heartbeat('w1', { free: 1 })).assignments
    const targets = await get<{ target: { id: string }; lastHeartbeatAt?: number }[]>('/v1/targets')
    const w1 = targets.find((t) => t.target.id === 'w1')
    // The initiator never heartbeats: it is in the scheduler.
    expect(targets.find((t) => t.target.id === 'initiator')?.lastHeartbeatAt).toBeUndefined()
    expect(w1).toMatchObject({
      target: { id: 'w1' },
      running: 1,
      queues: { firstLocal: 0, secondLocal: 0 },
      lastHeartbeatAt: clock.now(),
    })
    const stats = await get<{ queues: unknown; targets: number }>('/v1/stats')
    expect(stats).toMatchObject({ queues: { global: 0, waiting: 0 }, targets: 2 })
    // b waits for a, in words, on the job and in the order's list.
    const jobs = await as('ana-token-1').jobs(a!.orderId)
    const b = jobs.find((j) => j.name === 'b')!
    expect(b.wait).toEqual({
      kind: 'locks',
      waitingFor: [a!.jobId],
      text: 'waiting for 1 job before it: a',
    })
    const detail = await get<{ wait: { text: string } }>(`/v1/jobs/${b.id}`)
    expect(detail.wait.text).toBe('waiting for 1 job before it: a')
  })

  it('keeps one point per interval for the last hour: job rates and the commit time', async () => {
    expect(await get('/v1/stats/history')).toEqual([])
    await as('ana-token-1').submit({
      packet: {
        name: 'p',
        jobs: [
          { name: 'a', op },
          { name: 'b', op },
        ],
      },
    })
    const worker = as('worker-token-1')
    await worker.register({ id: 'w1', slots: 2 })
    const assigned = (await worker.heartbeat('w1', { free: 2 })).assignments
    await worker.heartbeat('w1', {
      results: assigned.map((x, i) => ({
        jobId: x.jobId,
        attempt: x.attempt,
        result: i === 0 ? { ok: true } : { ok: false, exitCode: 1 },
      })),
    })
    clock.advance(10_000)
    const [first] = await get<
      {
        at: number
        jobs: object
        succeededPerS: number
        failedPerS: number
        commitMs: number | null
      }[]
    >('/v1/stats/history')
    const { commitMs, ...rest } = first!
    expect(rest).toEqual({
      at: clock.now(),
      jobs: { running: 0, ready: 0, waiting: 0 },
      succeededPerS: 0.1,
      failedPerS: 0.1,
    })
    // Commits landed in the interval: their median time, measured on the real clock.
    expect(commitMs).toBeGreaterThanOrEqual(0)
    clock.advance(10_000)
    const two = await get<{ succeededPerS: number; commitMs: number | null }[]>('/v1/stats/history')
    expect(two).toHaveLength(2)
    expect(two[1]).toMatchObject({ succeededPerS: 0, commitMs: null })
    // An hour and more later: the last 360 points, oldest first.
    for (let i = 0; i < 400; i++) clock.advance(10_000)
    const hour = await get<{ at: number }[]>('/v1/stats/history')
    expect(hour).toHaveLength(360)
    expect(hour.at(-1)!.at).toBe(clock.now())
    expect(hour[0]!.at).toBe(clock.now() - 359 * 10_000)
  })
})
