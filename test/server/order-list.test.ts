/**
 * `GET /v1/orders` over loopback with a real store on both backends: filters by state, owner and
 * text, alone and together; sorted by age or priority; paged by the Lockstep-Next-Cursor header
 * with the Lockstep-Total count; a workbench sees its own orders only, whatever `owner` it asks.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { LockstepClient } from '../../src/client/client.ts'
import type { OrderFilter } from '../../src/client/client.ts'
import { LockstepError } from '../../src/core/errors.ts'
import { SchedulerService } from '../../src/service/service.ts'
import { startServer } from '../../src/server/server.ts'
import type { RunningServer } from '../../src/server/server.ts'
import { checkLeaks } from '../leaks.ts'
import { backends } from '../store/backends.ts'
import type { Backend } from '../store/backends.ts'

const opened = checkLeaks()

/** Two workbenches and a viewer, each token its name and `-token-123`. */
const tokens = (
  [
    ['workbench', 'ana'],
    ['workbench', 'bob'],
    ['viewer', 'vera'],
  ] as const
).map(([role, name]) => ({ role, name, token: `${name}-token-123` }))
const op = { builtin: 'noop' }

describe.each(backends)('the order list: %s', (_name, make) => {
  let backend: Backend
  let service: SchedulerService
  let server: RunningServer
  const client = (token: string) => new LockstepClient({ url: server.url, token })
  const ana = () => client('ana-token-123')
  const bob = () => client('bob-token-123')
  const vera = () => client('vera-token-123')

  beforeEach(async () => {
    backend = make('order_list')
    service = opened.service(await SchedulerService.start({ store: backend.open() }))
    server = opened.server(await startServer({ service, port: 0, tokens }))
  })

  afterEach(async () => {
    await server.close()
    await service.close()
    await backend.destroy()
  })

  const order = (c: LockstepClient, name: string, priority = 50) =>
    c.submit({ packet: { name, jobs: [{ name: 'a', op }] } }, { priority })
  const ids = async (c: LockstepClient, filter: OrderFilter) =>
    (await c.orders(filter)).map((o) => o.orderId)

  it('filters by state, owner and text, alone and together, and counts what matches', async () => {
    const a1 = await order(ana(), 'nightly-build')
    const a2 = await order(ana(), 'weekly')
    const b1 = await order(bob(), 'Nightly-Test')
    await ana().cancelOrder(a2.orderId)
    expect(await ids(vera(), {})).toEqual([b1.orderId, a2.orderId, a1.orderId])
    expect(await ids(vera(), { states: ['cancelled'] })).toEqual([a2.orderId])
    expect(await ids(vera(), { states: ['cancelled', 'running'] })).toHaveLength(3)
    expect(await ids(vera(), { owner: 'bob' })).toEqual([b1.orderId])
    expect(await ids(vera(), { q: 'NIGHTLY' })).toEqual([b1.orderId, a1.orderId])
    expect(await ids(vera(), { q: a2.orderId.slice(0, 20) })).toEqual([a2.orderId])
    expect(await ids(vera(), { q: 'nightly', owner: 'ana', states: ['running'] })).toEqual([
      a1.orderId,
    ])
    const page = await vera().orderPage({ q: 'nightly', limit: 1 })
    expect(page.total).toBe(2)
    expect(page.next).toEqual(expect.any(String))
    expect(page.orders[0]!.source).toEqual({ kind: 'packet', name: 'Nightly-Test' })
    // Comma-separated states, as a browser's URL has them.
    const res = await fetch(`${server.url}/v1/orders?state=cancelled,running&limit=2`, {
      headers: { authorization: 'Bearer vera-token-123' },
    })
    expect(res.headers.get('lockstep-total')).toBe('3')
    expect(((await res.json()) as unknown[]).length).toBe(2)
  })

  it("a workbench never sees another owner's orders, even asking for them", async () => {
    const mine = await order(ana(), 'mine')
    await order(bob(), 'his')
    expect(await ids(ana(), {})).toEqual([mine.orderId])
    const asked = await ana().orderPage({ owner: 'bob' })
    expect(asked).toEqual({ orders: [], total: 0 })
    expect(await ids(ana(), { owner: 'ana' })).toEqual([mine.orderId])
    expect(await ids(ana(), { q: 'his' })).toEqual([])
  })

  it('pages through 250 orders, 100 at a time, meeting each exactly once, newest first', async () => {
    const made: string[] = []
    for (let i = 0; i < 250; i++) made.push((await order(ana(), `p${i}`, 1 + (i % 3))).orderId)
    for (const sort of ['created', 'priority'] as const) {
      const seen: string[] = []
      let cursor: string | undefined
      let pages = 0
      do {
        const page = await vera().orderPage({ sort, limit: 100, ...(cursor ? { cursor } : {}) })
        expect(page.total).toBe(250)
        seen.push(...page.orders.map((o) => o.orderId))
        cursor = page.next
        pages++
      } while (cursor !== undefined)
      expect(pages).toBe(3)
      expect(new Set(seen).size).toBe(250)
      const newest = [...made].reverse()
      expect(seen).toEqual(
        sort === 'created'
          ? newest
          : [3, 2, 1].flatMap((p) => newest.filter((_, i) => 1 + ((249 - i) % 3) === p)),
      )
    }
  })

  it('sorts by priority, highest first, then newest', async () => {
    const low = await order(ana(), 'low', 10)
    const high = await order(ana(), 'high', 90)
    const mid = await order(ana(), 'mid', 50)
    const high2 = await order(ana(), 'high2', 90)
    expect(await ids(ana(), { sort: 'priority' })).toEqual(
      [high2, high, mid, low].map((o) => o.orderId),
    )
  })

  it.each([
    ['state=done', 'query.state'],
    ['sort=name', 'query.sort'],
    ['limit=0', 'query.limit'],
    ['limit=1001', 'query.limit'],
    ['cursor=nonsense', 'query.cursor'],
  ])('refuses %s naming %s', async (query, path) => {
    const res = await fetch(`${server.url}/v1/orders?${query}`, {
      headers: { authorization: 'Bearer vera-token-123' },
    })
    expect(res.status).toBe(400)
    const body = (await res.json()) as { error: { code: string; issues: { path: string }[] } }
    expect(body.error.code).toBe('VALIDATION_FAILED')
    expect(body.error.issues.map((i) => i.path)).toContain(path)
  })

  it('refuses a cursor of the other sort', async () => {
    for (let i = 0; i < 3; i++) await order(ana(), `p${i}`)
    const { next } = await ana().orderPage({ limit: 1 })
    const e = await ana()
      .orders({ limit: 1, sort: 'priority', cursor: next! })
      .catch((err: unknown) => err)
    expect(e).toBeInstanceOf(LockstepError)
    expect((e as LockstepError).code).toBe('VALIDATION_FAILED')
  })
})
