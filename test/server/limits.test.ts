/**
 * The limits that bound one request, through a real server: a refusal is a 4xx that names the
 * limit and the field, and changes nothing in the store.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { SchedulerService } from '../../src/service/service.ts'
import { startServer } from '../../src/server/server.ts'
import type { RunningServer } from '../../src/server/server.ts'
import { SqliteStore } from '../../src/store/sqlite-store.ts'
import { checkLeaks } from '../leaks.ts'

const opened = checkLeaks()

let dir: string
let service: SchedulerService
let server: RunningServer

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'lockstep-limits-'))
  service = opened.service(
    await SchedulerService.start({
      store: new SqliteStore({ path: join(dir, 'db') }),
      engine: { limits: { maxJobsPerOrder: 10, maxOrdersInFlightPerOwner: 2 } },
    }),
  )
  server = opened.server(
    await startServer({
      service,
      port: 0,
      maxStreamsPerCaller: 2,
      tokens: [
        { role: 'workbench', name: 'ana', token: 'ana-token' },
        { role: 'workbench', name: 'bob', token: 'bob-token' },
      ],
    }),
  )
})

afterEach(async () => {
  await server.close()
  await service.close()
  rmSync(dir, { recursive: true, force: true })
})

const packet = (jobs: number) => ({
  name: 'p',
  jobs: Array.from({ length: jobs }, (_, i) => ({ name: `j${i}`, op: { builtin: 'noop' } })),
})

async function call(
  token: string,
  path: string,
  body?: unknown,
): Promise<{
  status: number
  body: { error?: { code: string; message: string } } & Record<string, unknown>
}> {
  const res = await fetch(`${server.url}${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  })
  return { status: res.status, body: (await res.json()) as never }
}

describe('limits through the API', () => {
  it('refuses a packet over the jobs limit with a 400 that names it, and stores nothing', async () => {
    const got = await call('ana-token', '/v1/orders', { packet: packet(11) })
    expect(got.status).toBe(400)
    expect(got.body.error).toMatchObject({
      code: 'LIMIT_EXCEEDED',
      message: 'jobs: has 11 jobs; the limit is 10 jobs per order',
    })
    expect(await service.listOrders(100)).toEqual([])
  })

  it("refuses an owner's orders beyond its quota with a 429, not another owner's", async () => {
    for (let i = 0; i < 2; i++) {
      expect((await call('ana-token', '/v1/orders', { packet: packet(1) })).status).toBe(201)
    }
    const third = await call('ana-token', '/v1/orders', { packet: packet(1) })
    expect(third.status).toBe(429)
    expect(third.body.error?.code).toBe('QUOTA_EXCEEDED')
    expect(third.body.error?.message).toContain('the limit is 2 orders in flight per owner')
    expect((await call('bob-token', '/v1/orders', { packet: packet(1) })).status).toBe(201)
  })

  it('refuses a body nested deeper than the documents Lockstep reads, naming where', async () => {
    // As text: too deep for JSON.stringify, not for a client that writes its own.
    const args = '{"a":'.repeat(5_000) + '1' + '}'.repeat(5_000)
    const body = `{"packet":{"name":"p","jobs":[{"name":"a","op":{"builtin":"noop","args":${args}}}]}}`
    const got = await call('ana-token', '/v1/orders', body)
    expect(got.status).toBe(400)
    expect(got.body.error?.message).toMatch(
      /^packet\.jobs\[0\]\.op\.args(\.a)+: nests deeper than 64 levels/,
    )
    expect(await service.listOrders(100)).toEqual([])
  })

  it('holds at most so many event streams open per caller: the next gets a 429', async () => {
    const order = await call('ana-token', '/v1/orders', { packet: packet(1) })
    const orderId = (order.body as { orderId: string }).orderId
    const streams = new AbortController()
    const open = () =>
      fetch(`${server.url}/v1/events?order=${orderId}`, {
        headers: { authorization: 'Bearer ana-token' },
        signal: streams.signal,
      })
    const first = await open()
    const second = await open()
    expect([first.status, second.status]).toEqual([200, 200])
    const third = await open()
    expect(third.status).toBe(429)
    expect(((await third.json()) as { error: { message: string } }).error.message).toContain(
      'the limit is 2 streams per caller',
    )
    // Another caller has streams of its own.
    const bobs = await fetch(`${server.url}/v1/events`, {
      headers: { authorization: 'Bearer bob-token' },
    })
    expect(bobs.status).toBe(403)
    // A stream closed by its client frees its place.
    await first.body!.cancel()
    await expect
      .poll(async () => {
        const again = await open()
        if (again.status === 200) await again.body!.cancel()
        return again.status
      })
      .toBe(200)
    streams.abort()
  })
})
