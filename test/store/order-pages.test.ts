/**
 * The order list filtered, sorted and paged in the store, on both backends: each filter alone
 * and together, keyset pages that meet every order once, and the count of all that match.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { Engine, FakeClock } from '../../src/index.ts'
import { Journal } from '../../src/service/journal.ts'
import type { OrderQuery, Store } from '../../src/store/store.ts'
import { backends } from './backends.ts'
import type { Backend } from './backends.ts'

const op = { builtin: 'noop' }

describe.each(backends)('order pages: %s', (_name, make) => {
  let backend: Backend
  const open: Store[] = []
  const engines: Engine[] = []

  afterEach(async () => {
    for (const e of engines.splice(0)) e.stop()
    for (const s of open.splice(0)) await s.close()
    await backend.destroy()
  })

  /** A migrated store with orders made by an engine, committed. */
  async function storeWith(
    orders: { name: string; owner: string; priority?: number; cancel?: boolean }[],
  ): Promise<{ s: Store; ids: string[] }> {
    const s = backend.open()
    open.push(s)
    await s.migrate()
    const clock = new FakeClock()
    const engine = new Engine({ clock })
    engines.push(engine)
    const journal = new Journal()
    engine.on((e) => journal.add(e, engine))
    const ids = orders.map((o) => {
      clock.advance(1)
      const f = engine.submitPacket(
        { name: o.name, jobs: [{ name: 'a', op }] },
        { priority: o.priority ?? 50 },
        o.owner,
      )
      if (o.cancel === true) engine.cancelOrder(f.orderId)
      return f.orderId
    })
    await s.commit(journal.take(engine))
    return { s, ids }
  }

  const ids = async (s: Store, q: OrderQuery) =>
    (await s.findOrders(q)).orders.map((o) => o.order.id)

  it('filters by state, owner and text, alone and together, newest first, with the total', async () => {
    backend = make('pages_filters')
    const { s, ids: made } = await storeWith([
      { name: 'Nightly-Build', owner: 'ana' }, // 0
      { name: 'nightly-test', owner: 'bob', cancel: true }, // 1
      { name: 'weekly', owner: 'ana', cancel: true }, // 2
      { name: 'night_50', owner: 'ana' }, // 3
    ])
    const pick = (...i: number[]) => i.map((k) => made[k]!)
    expect(await ids(s, { limit: 10 })).toEqual(pick(3, 2, 1, 0))
    expect(await ids(s, { limit: 10, states: ['cancelled'] })).toEqual(pick(2, 1))
    expect(await ids(s, { limit: 10, states: ['cancelled', 'running'] })).toEqual(pick(3, 2, 1, 0))
    expect(await ids(s, { limit: 10, owner: 'ana' })).toEqual(pick(3, 2, 0))
    expect(await ids(s, { limit: 10, text: 'NIGHTLY' })).toEqual(pick(1, 0))
    // % and _ are the text's own, not wildcards.
    expect(await ids(s, { limit: 10, text: 'ht_' })).toEqual(pick(3))
    expect(await ids(s, { limit: 10, text: '%' })).toEqual([])
    expect(await ids(s, { limit: 10, owner: 'ana', states: ['cancelled'] })).toEqual(pick(2))
    expect(await ids(s, { limit: 10, owner: 'ana', text: 'night', states: ['running'] })).toEqual(
      pick(3, 0),
    )
    const page = await s.findOrders({ limit: 1, owner: 'ana', text: 'night' })
    expect(page.total).toBe(2)
    expect(page.orders.map((o) => [o.order.source.kind, o.order.source.name])).toEqual([
      ['packet', 'night_50'],
    ])
    expect((await s.findOrders({ limit: 10, owner: 'carol' })).total).toBe(0)
  })

  it('finds an order by a prefix of its id, with or without dashes, in any case', async () => {
    backend = make('pages_id')
    const { s, ids: made } = await storeWith([
      { name: 'a', owner: 'ana' },
      { name: 'b', owner: 'ana' },
    ])
    const id = made[1]!
    expect(await ids(s, { limit: 10, text: id })).toEqual([id])
    expect(await ids(s, { limit: 10, text: id.slice(0, 23).toUpperCase() })).toEqual([id])
    expect(await ids(s, { limit: 10, text: id.replace(/-/g, '').slice(0, 31) })).toEqual([id])
    expect(await ids(s, { limit: 10, text: 'ffff' })).toEqual([])
  })

  it('pages through 250 orders, 100 at a time, meeting each once in order', async () => {
    backend = make('pages_250')
    const { s, ids: made } = await storeWith(
      Array.from({ length: 250 }, (_, i) => ({ name: `p${i}`, owner: 'ana' })),
    )
    for (const sort of ['created', 'priority'] as const) {
      const seen: string[] = []
      let after: OrderQuery['after']
      let pages = 0
      do {
        const page = await s.findOrders({ limit: 100, sort, after })
        expect(page.total).toBe(250)
        seen.push(...page.orders.map((o) => o.order.id))
        after = page.next
        pages++
      } while (after !== undefined)
      expect(pages).toBe(3)
      expect(seen).toEqual([...made].reverse())
    }
  })

  it('sorts by priority, highest first, then newest, and pages across equal priorities', async () => {
    backend = make('pages_priority')
    const { s, ids: made } = await storeWith(
      [10, 90, 50, 90, 10, 50].map((priority, i) => ({ name: `p${i}`, owner: 'ana', priority })),
    )
    const expected = [3, 1, 5, 2, 4, 0].map((i) => made[i]!)
    expect(await ids(s, { limit: 10, sort: 'priority' })).toEqual(expected)
    const seen: string[] = []
    let after: OrderQuery['after']
    do {
      const page = await s.findOrders({ limit: 4, sort: 'priority', owner: 'ana', after })
      seen.push(...page.orders.map((o) => o.order.id))
      after = page.next
    } while (after !== undefined)
    expect(seen).toEqual(expected)
  })
})
