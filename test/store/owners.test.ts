/**
 * Owners in the store, on both backends: one owner's orders listed through an index, and packets
 * that keep their owner across a restart, so a name still resolves within its owner's packets.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { Engine, FakeClock } from '../../src/index.ts'
import { Journal } from '../../src/service/journal.ts'
import type { Store } from '../../src/store/store.ts'
import { backends } from './backends.ts'
import type { Backend } from './backends.ts'

const op = { builtin: 'noop' }

describe.each(backends)('owners in the store: %s', (_name, make) => {
  let backend: Backend
  const open: Store[] = []
  const engines: Engine[] = []

  async function store(): Promise<Store> {
    const s = backend.open()
    open.push(s)
    await s.migrate()
    return s
  }

  /** An engine whose changes are committed to `s` on `commit()`. */
  function recorded(s: Store) {
    const engine = new Engine({ clock: new FakeClock() })
    engines.push(engine)
    const journal = new Journal()
    engine.on((e) => journal.add(e, engine))
    return { engine, commit: () => s.commit(journal.take(engine)) }
  }

  afterEach(async () => {
    for (const e of engines.splice(0)) e.stop()
    for (const s of open.splice(0)) await s.close()
    await backend.destroy()
  })

  it("lists one owner's orders, newest first, and every order without an owner", async () => {
    backend = make('owners_list')
    const s = await store()
    const { engine, commit } = recorded(s)
    const packet = (name: string) => ({ name, jobs: [{ name: 'a', op }] })
    const by = ['ana', 'bob', 'ana', 'bob', 'ana'].map(
      (who, i) => [who, engine.submitPacket(packet(`p${i}`), {}, who).orderId] as const,
    )
    await commit()
    const ids = (who: string) =>
      by
        .filter(([w]) => w === who)
        .map(([, id]) => id)
        .reverse()
    expect((await s.listOrders(10, 'ana')).map((o) => o.order.id)).toEqual(ids('ana'))
    expect((await s.listOrders(2, 'ana')).map((o) => o.order.id)).toEqual(ids('ana').slice(0, 2))
    expect((await s.listOrders(10, 'bob')).map((o) => o.order.owner)).toEqual(['bob', 'bob'])
    expect(await s.listOrders(10, 'carol')).toEqual([])
    expect(await s.listOrders(10)).toHaveLength(5)
    const [first] = await s.listOrders(1, 'ana')
    expect(first).toEqual(await s.order(first!.order.id))
  })

  it('has an index that serves the list by owner', async () => {
    backend = make('owners_index')
    await store()
    const indexes =
      backend.name === 'sqlite'
        ? await backend.query<{ name: string }>(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'orders'",
          )
        : await backend.query<{ name: string }>(
            "SELECT indexname AS name FROM pg_indexes WHERE tablename = 'orders' AND schemaname = current_schema()",
          )
    expect(indexes.map((i) => i.name)).toContain('orders_owner')
    if (backend.name === 'sqlite') {
      const plan = await backend.query<{ detail: string }>(
        "EXPLAIN QUERY PLAN SELECT id FROM orders WHERE owner = 'ana' ORDER BY id DESC LIMIT 10",
      )
      expect(plan.map((p) => p.detail).join('\n')).toMatch(/USING (COVERING )?INDEX orders_owner/)
    }
  })

  it('keeps a packet’s owner across a restart: names resolve within their owner’s packets', async () => {
    backend = make('owners_packets')
    const s = await store()
    const first = recorded(s)
    const anaP = first.engine.createPacket({ name: 'p', jobs: [{ name: 'a', op }] }, 'ana')
    const bobP = first.engine.createPacket({ name: 'p', jobs: [{ name: 'b', op }] }, 'bob')
    await first.commit()
    first.engine.stop()

    const snapshot = await (await store()).load()
    expect(snapshot.packets.map((p) => [p.id, p.owner])).toEqual([
      [anaP.id, 'ana'],
      [bobP.id, 'bob'],
    ])
    const again = new Engine({ clock: new FakeClock() })
    engines.push(again)
    again.restore(snapshot)
    const job = (orderId: string) => again.jobs(orderId)[0]!.name
    expect(job(again.orderPacket('p', {}, 'ana').orderId)).toBe('a')
    expect(job(again.orderPacket('p', {}, 'bob').orderId)).toBe('b')
    expect(() => again.orderPacket(anaP.id, {}, 'bob')).toThrow(/no packet has the id or name/)
    expect(() => again.orderPacket('p', {}, 'carol')).toThrow(/no packet has the id or name/)
    expect(job(again.orderPacket('bob/p', {}, 'ops', 'every-owner').orderId)).toBe('b')
    expect(job(again.orderPacket(anaP.id, {}, 'ops', 'every-owner').orderId)).toBe('a')
  })
})
