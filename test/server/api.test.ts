/**
 * The HTTP API over loopback with a real store: tokens and roles, bad input that gets a clear
 * 4xx and stores nothing, a worker's round trip, and an order followed over SSE to its end.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { LockstepClient } from '../../src/client/client.ts'
import type { StreamEvent } from '../../src/client/client.ts'
import { SchedulerService } from '../../src/service/service.ts'
import { startServer } from '../../src/server/server.ts'
import type { RunningServer } from '../../src/server/server.ts'
import { checkLeaks } from '../leaks.ts'
import { refusal } from '../refusal.ts'
import { backends } from '../store/backends.ts'
import type { Backend } from '../store/backends.ts'

const tokens = [
  { role: 'workbench' as const, name: 'ana', token: 'ana-token-123' },
  { role: 'workbench' as const, name: 'bob', token: 'bob-token-123' },
  { role: 'worker' as const, name: '*', token: 'worker-token-1' },
  { role: 'admin' as const, name: 'ops', token: 'admin-token-1' },
]
const op = { builtin: 'noop' }

const opened = checkLeaks()

describe.each(backends)('HTTP API: %s', (_name, make) => {
  let backend: Backend
  let service: SchedulerService
  let server: RunningServer
  let ana: LockstepClient
  let bob: LockstepClient
  let worker: LockstepClient

  beforeEach(async () => {
    backend = make('api')
    service = opened.service(await SchedulerService.start({ store: backend.open() }))
    server = opened.server(await startServer({ service, port: 0, tokens, maxBodyBytes: 64 * 1024 }))
    ana = new LockstepClient({ url: server.url, token: 'ana-token-123' })
    bob = new LockstepClient({ url: server.url, token: 'bob-token-123' })
    worker = new LockstepClient({ url: server.url, token: 'worker-token-1' })
  })

  afterEach(async () => {
    await server.close()
    await service.close()
    await backend.destroy()
  })

  it('serves health, metrics and an OpenAPI document without a token', async () => {
    expect(await new LockstepClient({ url: server.url }).health()).toEqual({ ok: true })
    const doc = (await (await fetch(`${server.url}/openapi.json`)).json()) as {
      paths: Record<string, unknown>
      components: { schemas: Record<string, unknown> }
    }
    expect(Object.keys(doc.paths)).toContain('/v1/workers/{id}/heartbeat')
    expect(Object.keys(doc.components.schemas)).toEqual([
      'Packet',
      'Artifact',
      'Step',
      'OrderOptions',
      'TargetRegistration',
      'Heartbeat',
    ])
    const metrics = await (await fetch(`${server.url}/metrics`)).text()
    expect(metrics).toContain('lockstep_jobs{state="running"} 0')
  })

  it('checks tokens and roles', async () => {
    const none = new LockstepClient({ url: server.url })
    expect((await refusal(none.orders())).code).toBe('UNAUTHORIZED')
    const wrong = new LockstepClient({ url: server.url, token: 'nope-nope-nope' })
    expect((await refusal(wrong.orders())).code).toBe('UNAUTHORIZED')
    const submit = worker.submit({ packet: { name: 'p', jobs: [{ name: 'a', op }] } })
    expect((await refusal(submit)).message).toMatch(/a worker token may not do this/)
    expect((await refusal(ana.heartbeat('w1', {}))).code).toBe('FORBIDDEN')
    const order = await ana.submit({ packet: { name: 'p', jobs: [{ name: 'a', op }] } })
    expect(order.owner).toBe('ana')
    const download = await refusal(ana.products(order.orderId))
    expect([download.status, download.code]).toEqual([403, 'DOWNLOAD_DISABLED'])
    const cancel = await refusal(bob.cancelOrder(order.orderId))
    expect([cancel.status, cancel.code]).toEqual([404, 'ORDER_NOT_FOUND'])
    expect(cancel.message).not.toMatch(/ana/)
    const admin = new LockstepClient({ url: server.url, token: 'admin-token-1' })
    expect((await admin.cancelOrder(order.orderId)).state).toBe('cancelled')
  })

  it('answers bad input with a clear 4xx and stores nothing', async () => {
    const yaml = await refusal(ana.submitDocument('name: p\njobs:\n  - name: a\n   op: x\n'))
    expect(yaml.code).toBe('VALIDATION_FAILED')
    expect(yaml.message).toMatch(/^body:4:\d+:/)
    const cycle = await refusal(
      ana.submit({
        packet: {
          name: 'p',
          jobs: [
            { name: 'a', op, after: ['b'] },
            { name: 'b', op, after: ['a'] },
          ],
        },
      }),
    )
    expect(cycle.code).toBe('CYCLE_IN_GRAPH')
    expect(cycle.status).toBe(400)
    const project = await refusal(
      ana.submit({ artifact: { project: 'nowhere', steps: [{ kind: 'parallel', op }] } }),
    )
    expect(project.code).toBe('NO_WORKER_FOR_PROJECT')
    expect(project.status).toBe(422)
    const big = await refusal(
      ana.submit({ packet: { name: 'p', description: 'x'.repeat(100_000), jobs: [] } }),
    )
    expect(big.code).toBe('PAYLOAD_TOO_LARGE')
    const field = await refusal(ana.submit({ packet: { name: 'p', jobs: [{ name: 'a' }] } }))
    expect(field.message).toMatch(/jobs\[0\]\.op/)
    expect(await ana.orders()).toEqual([])
  })

  it('runs an order through a worker and streams it to the end', async () => {
    await worker.register({ id: 'w1', slots: 2 })
    const order = await ana.submit(
      {
        packet: {
          name: 'p',
          jobs: [
            { name: 'a', op },
            { name: 'b', op, after: ['a'] },
          ],
        },
      },
      { priority: 70 },
    )
    const events: StreamEvent[] = []
    const followed = ana.events(order.orderId, (e) => events.push(e))
    let results: { jobId: string; attempt: number; result: { ok: boolean } }[] = []
    for (let i = 0; i < 3; i++) {
      const reply = await worker.heartbeat('w1', { results, free: 2, waitMs: 300 })
      results = reply.assignments.map((a) => ({
        jobId: a.jobId,
        attempt: a.attempt,
        result: { ok: true },
      }))
    }
    await followed
    const last = events.at(-1)!
    expect(last.type).toBe('fulfilment')
    expect(last.data).toMatchObject({ state: 'succeeded', counts: { succeeded: 2 } })
    expect(events.map((e) => e.type)).toContain('attempt:started')
    const jobs = await ana.jobs(order.orderId)
    const detail = await ana.job(jobs[1]!.id)
    expect(detail.attempts.map((a) => a.target)).toEqual(['w1'])
    expect(await ana.order(order.orderId)).toMatchObject({
      order: { priority: 70, owner: 'ana' },
      fulfilment: { state: 'succeeded' },
    })
    expect((await worker.locate(jobs[0]!.id)).holders).toEqual([{ target: 'w1' }])
  })

  it('wakes a waiting heartbeat when a job becomes ready', async () => {
    await worker.register({ id: 'w1', slots: 1 })
    const started = Date.now()
    const waiting = worker.heartbeat('w1', { free: 1, waitMs: 5000 })
    await new Promise((r) => setTimeout(r, 100))
    await ana.submit({ packet: { name: 'p', jobs: [{ name: 'a', op }] } })
    const reply = await waiting
    expect(reply.assignments).toHaveLength(1)
    expect(Date.now() - started).toBeLessThan(4000)
  })

  it('answers a malformed URL with a 400 and keeps serving', async () => {
    const res = await fetch(`${server.url}/v1/orders/%ZZ`, {
      headers: { authorization: 'Bearer ana-token-123' },
    })
    expect(res.status).toBe(400)
    expect(((await res.json()) as { error: { message: string } }).error.message).toBe(
      'id: is not a valid URL component',
    )
    const typo = await refusal(ana.order('not-an-order'))
    expect([typo.status, typo.code]).toEqual([404, 'ORDER_NOT_FOUND'])
    expect(await ana.health()).toEqual({ ok: true })
  })

  it('refuses a worker token that speaks for the initiator', async () => {
    const e = await refusal(worker.heartbeat('initiator', { free: 10 }))
    expect(e.code).toBe('TARGET_NOT_FOUND')
  })

  it('reads an ended order and its jobs from the store once the engine has let it go', async () => {
    await worker.register({ id: 'w1' })
    const order = await ana.submit({ packet: { name: 'p', jobs: [{ name: 'a', op }] } })
    const [a] = (await worker.heartbeat('w1', { free: 1 })).assignments
    await worker.heartbeat('w1', {
      results: [{ jobId: a!.jobId, attempt: 1, result: { ok: true } }],
    })
    await service.durable()
    expect(service.stats().orders).toBe(0)
    expect((await ana.order(order.orderId)).fulfilment).toMatchObject({ state: 'succeeded' })
    const detail = await ana.job(a!.jobId)
    expect(detail.job.state).toBe('succeeded')
    expect(detail.attempts.map((x) => x.state)).toEqual(['succeeded'])
    expect((await refusal(ana.cancelJob(a!.jobId))).code).toBe('ALREADY_FINAL')
  })

  it('shows the artefacts a worker reported with the attempt and the job, and refuses one that is no URL', async () => {
    await worker.register({ id: 'w1' })
    const packet = {
      name: 'p',
      jobs: [
        { name: 'a', op },
        { name: 'b', op, after: ['a'] },
      ],
    }
    const order = await ana.submit({ packet })
    const [a] = (await worker.heartbeat('w1', { free: 1 })).assignments
    const bad = await refusal(
      worker.heartbeat('w1', {
        results: [{ jobId: a!.jobId, attempt: 1, result: { ok: true, artefacts: ['report'] } }],
      }),
    )
    expect([bad.status, bad.code]).toEqual([400, 'VALIDATION_FAILED'])
    expect((await ana.job(a!.jobId)).attempts.map((x) => x.state)).toEqual(['running'])
    const artefacts = ['https://example.com/runs/1/report.html', 's3://bucket/runs/1/model.pt']
    const [b] = (
      await worker.heartbeat('w1', {
        results: [{ jobId: a!.jobId, attempt: 1, result: { ok: true, artefacts } }],
        free: 1,
      })
    ).assignments
    const listed = async () =>
      (await ana.jobs(order.orderId)).map((j) => [j.name, j.state, j.artefacts])
    // In flight, the engine answers.
    expect(await listed()).toEqual([
      ['a', 'succeeded', artefacts],
      ['b', 'running', undefined],
    ])
    await worker.heartbeat('w1', {
      results: [{ jobId: b!.jobId, attempt: 1, result: { ok: true } }],
    })
    await service.durable()
    // The order has ended and left memory: the store answers, with the artefacts.
    expect((await ana.order(order.orderId)).fulfilment.state).toBe('succeeded')
    expect(service.stats().orders).toBe(0)
    expect((await ana.job(a!.jobId)).attempts).toMatchObject([{ state: 'succeeded', artefacts }])
    expect(await listed()).toEqual([
      ['a', 'succeeded', artefacts],
      ['b', 'succeeded', undefined],
    ])
  })
})
