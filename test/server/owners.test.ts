/**
 * Owners see their own, over loopback with a real store on both backends: a workbench lists,
 * reads, follows, downloads and cancels only its own orders and their jobs (another owner's is
 * not found, and nothing changes in the store); a viewer reads everything and changes nothing;
 * an admin sees all; a packet name resolves within its owner's packets.
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
  { role: 'viewer' as const, name: 'vera', token: 'vera-token-123' },
  { role: 'worker' as const, name: 'w1', token: 'worker-token-1' },
  { role: 'admin' as const, name: 'ops', token: 'admin-token-1' },
]
const op = { builtin: 'noop' }
const chain = {
  name: 'p',
  jobs: [
    { name: 'a', op },
    { name: 'b', op, after: ['a'] },
  ],
}

const opened = checkLeaks()

/** The status and code of a refusal. */
async function refused(p: Promise<unknown>): Promise<[number, string]> {
  const e = await refusal(p)
  return [e.status, e.code]
}

describe.each(backends)('owners see their own: %s', (_name, make) => {
  let backend: Backend
  let service: SchedulerService
  let server: RunningServer
  let ana: LockstepClient
  let bob: LockstepClient
  let vera: LockstepClient
  let ops: LockstepClient
  let worker: LockstepClient

  beforeEach(async () => {
    backend = make('owners')
    service = opened.service(await SchedulerService.start({ store: backend.open() }))
    server = opened.server(await startServer({ service, port: 0, tokens, allowDownload: true }))
    const client = (token: string) => new LockstepClient({ url: server.url, token })
    ana = client('ana-token-123')
    bob = client('bob-token-123')
    vera = client('vera-token-123')
    ops = client('admin-token-1')
    worker = client('worker-token-1')
  })

  afterEach(async () => {
    await server.close()
    await service.close()
    await backend.destroy()
  })

  /** Bob's order of a chain a → b, with `a` done on w1 (its product held there) and `b` ready. */
  async function bobsOrder(): Promise<{ orderId: string; a: string; b: string }> {
    await worker.register({ id: 'w1', slots: 1 })
    const order = await bob.submit({ packet: chain })
    const [a] = (await worker.heartbeat('w1', { free: 1 })).assignments
    await worker.heartbeat('w1', {
      results: [{ jobId: a!.jobId, attempt: 1, result: { ok: true } }],
      free: 0,
    })
    const jobs = await bob.jobs(order.orderId)
    expect(jobs.map((j) => [j.name, j.state])).toEqual([
      ['a', 'succeeded'],
      ['b', 'ready'],
    ])
    return { orderId: order.orderId, a: jobs[0]!.id, b: jobs[1]!.id }
  }

  /** What the store holds of every order, its jobs and the event log. */
  async function stored(): Promise<unknown> {
    await service.durable()
    const orders = await service.store.listOrders(1000)
    const jobs = await Promise.all(orders.map((o) => service.store.jobs(o.order.id)))
    return { orders, jobs, events: (await service.store.events(0, 100_000)).length }
  }

  /** The first event of a stream, then the stream closed. */
  async function firstEvent(client: LockstepClient, orderId?: string): Promise<StreamEvent> {
    const stop = new AbortController()
    let first: StreamEvent | undefined
    await client
      .events(
        orderId,
        (e) => {
          first ??= e
          stop.abort()
        },
        { signal: stop.signal },
      )
      .catch((e: unknown) => {
        if (!stop.signal.aborted) throw e
      })
    return first!
  }

  it("ana cannot list, read, follow, download or cancel bob's order or its jobs", async () => {
    const bobs = await bobsOrder()
    const mine = await ana.submit({ packet: { name: 'q', jobs: [{ name: 'x', op }] } })
    const before = await stored()

    expect((await ana.orders()).map((o) => o.orderId)).toEqual([mine.orderId])
    expect((await bob.orders()).map((o) => o.orderId)).toEqual([bobs.orderId])
    const read = await refusal(ana.order(bobs.orderId))
    expect([read.status, read.code]).toEqual([404, 'ORDER_NOT_FOUND'])
    // Told exactly as an order that does not exist: nothing says whose it is, or that it is.
    const none = '0190a000-0000-7000-8000-000000000000'
    const missing = await refusal(ana.order(none))
    expect(read.message.replace(bobs.orderId, 'ID')).toBe(missing.message.replace(none, 'ID'))
    expect(read.message).not.toMatch(/bob/)
    expect(await refused(ana.jobs(bobs.orderId))).toEqual([404, 'ORDER_NOT_FOUND'])
    expect(await refused(ana.locks(bobs.orderId))).toEqual([404, 'ORDER_NOT_FOUND'])
    expect(await refused(ana.job(bobs.a))).toEqual([404, 'JOB_NOT_FOUND'])
    expect(await refused(ana.events(bobs.orderId, () => {}))).toEqual([404, 'ORDER_NOT_FOUND'])
    expect(await refused(ana.products(bobs.orderId))).toEqual([404, 'ORDER_NOT_FOUND'])
    expect(await refused(ana.locate(bobs.a))).toEqual([404, 'PRODUCT_NOT_FOUND'])
    expect(await refused(ana.cancelOrder(bobs.orderId))).toEqual([404, 'ORDER_NOT_FOUND'])
    expect(await refused(ana.cancelJob(bobs.b))).toEqual([404, 'JOB_NOT_FOUND'])
    expect(await refused(ana.events(undefined, () => {}))).toEqual([403, 'FORBIDDEN'])
    expect(await stored()).toEqual(before)

    // Bob, the owner, does each of them: what refused ana was the owner check.
    expect((await bob.order(bobs.orderId)).order.owner).toBe('bob')
    expect((await bob.job(bobs.a)).job.state).toBe('succeeded')
    // Released or not, a lock stays in the answer: the graph is drawn whole.
    expect(await bob.locks(bobs.orderId)).toEqual([{ jobId: bobs.a, nextId: bobs.b }])
    expect((await firstEvent(bob, bobs.orderId)).type).toBe('fulfilment')
    expect((await bob.products(bobs.orderId)).map((p) => p.holders)).toEqual([[{ target: 'w1' }]])
    expect((await bob.locate(bobs.a)).holders).toEqual([{ target: 'w1' }])
    expect((await bob.cancelJob(bobs.b)).state).toBe('cancelled')
  })

  it('a viewer reads every order, job and event stream, and changes nothing', async () => {
    const bobs = await bobsOrder()
    const mine = await ana.submit({ packet: { name: 'q', jobs: [{ name: 'x', op }] } })

    expect((await vera.orders()).map((o) => o.orderId)).toEqual([mine.orderId, bobs.orderId])
    expect((await vera.order(bobs.orderId)).order.owner).toBe('bob')
    expect((await vera.jobs(mine.orderId)).map((j) => j.name)).toEqual(['x'])
    expect((await vera.job(bobs.a)).attempts.map((a) => a.target)).toEqual(['w1'])
    expect((await firstEvent(vera, bobs.orderId)).type).toBe('fulfilment')
    // The stream of every order carries what any owner does while it is open.
    const stop = new AbortController()
    const res = await fetch(`${server.url}/v1/events`, {
      headers: { authorization: 'Bearer vera-token-123' },
      signal: stop.signal,
    })
    expect(res.status).toBe(200)
    const later = await ana.submit({ packet: { name: 'r', jobs: [{ name: 'y', op }] } })
    let text = ''
    const decoder = new TextDecoder()
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      text += decoder.decode(chunk, { stream: true })
      if (text.includes(later.orderId)) break
    }
    stop.abort()
    expect(text).toMatch(/event: order:submitted/)

    const before = await stored()

    const changes = [
      () => vera.submit({ packet: chain }),
      () => vera.request('POST', '/v1/packets', chain),
      () => vera.cancelOrder(bobs.orderId),
      () => vera.cancelJob(bobs.b),
      () => vera.products(bobs.orderId),
      () => vera.locate(bobs.a),
      () => vera.heartbeat('w1', { free: 1 }),
    ]
    for (const change of changes) expect(await refused(change())).toEqual([403, 'FORBIDDEN'])
    expect(await stored()).toEqual(before)
  })

  it("an admin sees every order and changes another owner's", async () => {
    const bobs = await bobsOrder()
    const mine = await ana.submit({ packet: { name: 'q', jobs: [{ name: 'x', op }] } })
    expect((await ops.orders()).map((o) => o.owner)).toEqual(['ana', 'bob'])
    expect((await ops.jobs(mine.orderId)).map((j) => j.name)).toEqual(['x'])
    expect((await ops.job(bobs.a)).job.orderId).toBe(bobs.orderId)
    expect((await ops.locate(bobs.a)).holders).toEqual([{ target: 'w1' }])
    expect((await ops.cancelOrder(bobs.orderId)).state).toBe('cancelled')
  })

  it("resolves a packet name within its owner's packets; bob cannot order ana's", async () => {
    const store = (client: LockstepClient, name: string) =>
      client.request<{ id: string; name: string }>('POST', '/v1/packets', {
        name: 'p',
        jobs: [{ name, op }],
      })
    const anas = await store(ana, 'from-ana')
    await store(bob, 'from-bob')
    const jobOf = async (client: LockstepClient, orderId: string) =>
      (await client.jobs(orderId)).map((j) => j.name)

    const a = await ana.submit({ packetRef: 'p' })
    expect(await jobOf(ana, a.orderId)).toEqual(['from-ana'])
    const b = await bob.submit({ packetRef: 'p' })
    expect(await jobOf(bob, b.orderId)).toEqual(['from-bob'])
    const before = await stored()
    for (const ref of [anas.id, 'ana/p']) {
      const e = await refusal(bob.submit({ packetRef: ref }))
      expect([e.status, e.code]).toEqual([404, 'PACKET_NOT_FOUND'])
      expect(e.message).not.toMatch(/ana'?s|belongs/)
    }
    expect(await stored()).toEqual(before)

    // An admin reaches any owner's packet, by id or as owner/name.
    const byName = await ops.submit({ packetRef: 'bob/p' })
    expect(await jobOf(ops, byName.orderId)).toEqual(['from-bob'])
    const byId = await ops.submit({ packetRef: anas.id })
    expect(await jobOf(ops, byId.orderId)).toEqual(['from-ana'])
  })
})
