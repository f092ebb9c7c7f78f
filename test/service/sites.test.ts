/**
 * A federated result covers the sites it should: an artifact is bound over the workers that
 * hold its project's data, and while one of them is registered but offline the order is refused
 * with the missing sites named, waits for them (`waitForSitesMs`), or runs over the live ones
 * only when told (`minSites`). The sites it was bound over are stored with the order and shown
 * by `lockstep status ORDER`.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { LockstepClient } from '../../src/client/client.ts'
import { main } from '../../src/cli/main.ts'
import { FakeClock } from '../../src/core/clock.ts'
import type { OrderFulfilment } from '../../src/core/engine/fulfilment.ts'
import { SchedulerService } from '../../src/service/service.ts'
import { startServer } from '../../src/server/server.ts'
import type { RunningServer } from '../../src/server/server.ts'
import { SqliteStore } from '../../src/store/sqlite-store.ts'
import { checkLeaks } from '../leaks.ts'
import { refusal } from '../refusal.ts'

const opened = checkLeaks()
const LEASE = 10_000
const artifact = {
  project: 'clinics',
  steps: [
    { kind: 'parallel', op: { builtin: 'noop' } },
    { kind: 'finalize', op: { builtin: 'noop' } },
  ],
}

let dir: string
let clock: FakeClock
let service: SchedulerService
let server: RunningServer
const client = () => new LockstepClient({ url: server.url })

/** A scheduler on the test's store, and its server. */
async function startScheduler(): Promise<void> {
  service = opened.service(
    await SchedulerService.start({
      store: new SqliteStore({ path: join(dir, 'db') }),
      clock,
      engine: { leaseMs: LEASE },
    }),
    { clock },
  )
  server = opened.server(await startServer({ service, port: 0 }))
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'lockstep-sites-'))
  clock = new FakeClock(Date.now() - 60_000)
  await startScheduler()
  // Three sites hold the data; c stops answering and its lease runs out.
  for (const id of ['a', 'b', 'c']) await service.registerTarget({ id, projects: ['clinics'] })
  clock.advance(LEASE / 2)
  await service.heartbeat('a', {})
  await service.heartbeat('b', {})
  clock.advance(LEASE / 2 + 1)
  expect(
    service
      .targets()
      .filter((t) => !t.live)
      .map((t) => t.target.id),
  ).toEqual(['c'])
})

afterEach(async () => {
  await server.close()
  await service.close()
  rmSync(dir, { recursive: true, force: true })
})

describe('an artifact while a site is offline', () => {
  it('is refused with the offline sites named, and nothing stored', async () => {
    const e = await refusal(client().submit({ artifact }))
    expect(e.status).toBe(422)
    expect(e.code).toBe('SITES_OFFLINE')
    expect(e.message).toContain("1 of the 3 sites that hold project 'clinics' are offline: c.")
    expect(e.message).toContain('minSites to run over the 2 live ones')
    expect(await service.listOrders(10)).toEqual([])
  })

  it('runs over the live sites with minSites, records them, and lockstep status shows them', async () => {
    const order = await client().submit({ artifact }, { minSites: 2 })
    expect(order.total).toBe(3)
    const { order: stored } = await client().order(order.orderId)
    expect(stored.sites).toEqual({ bound: ['a', 'b'], offline: ['c'], minSites: 2 })
    const lines: string[] = []
    expect(
      await main(['status', order.orderId, '--server', server.url], (l) => lines.push(l)),
    ).toBe(0)
    expect(lines).toContain('  bound over 2 sites: a, b; without 1 offline: c (minSites 2)')
  })

  it('is refused when fewer than minSites are live', async () => {
    const e = await refusal(client().submit({ artifact }, { minSites: 3 }))
    expect(e.code).toBe('SITES_OFFLINE')
    expect(e.message).toBe(
      "2 of the 3 sites that hold project 'clinics' are live, fewer than minSites 3; offline: c",
    )
  })

  it('waits for the site with waitForSitesMs, and is bound over every site once it is back', async () => {
    let answered: OrderFulfilment | undefined
    const pending = client()
      .submit({ artifact }, { waitForSitesMs: 60_000 })
      .then((o) => (answered = o))
    await new Promise((r) => setTimeout(r, 100))
    expect(answered).toBeUndefined()
    expect(await service.listOrders(10)).toEqual([])
    await service.registerTarget({ id: 'c', projects: ['clinics'] })
    const order = await pending
    expect(order.total).toBe(4)
    expect((await client().order(order.orderId)).order.sites).toEqual({
      bound: ['a', 'b', 'c'],
      offline: [],
    })
  })

  it('is refused once waitForSitesMs is up, naming the sites still offline', async () => {
    const pending = refusal(client().submit({ artifact }, { waitForSitesMs: 30_000 }))
    await new Promise((r) => setTimeout(r, 100))
    // Another site registering is not the one missing: it waits on.
    await service.registerTarget({ id: 'd', projects: ['elsewhere'] })
    for (let t = 0; t < 30_000; t += LEASE / 2) {
      await service.heartbeat('a', {})
      await service.heartbeat('b', {})
      clock.advance(LEASE / 2)
    }
    const e = await pending
    expect(e.code).toBe('SITES_OFFLINE')
    expect(e.message).toContain('are offline: c.')
  })

  it.each(['minSites', 'waitForSitesMs'])(
    'refuses %s on a packet: it is not bound over sites',
    async (key) => {
      const e = await refusal(
        client().submit(
          { packet: { name: 'p', jobs: [{ name: 'j', op: { builtin: 'noop' } }] } },
          { [key]: 1 },
        ),
      )
      expect(e.code).toBe('VALIDATION_FAILED')
      expect(e.message).toBe(
        `${key}: applies to an artifact's order only: a packet's jobs are not bound over sites`,
      )
    },
  )

  it('is bound over the rest once an operator forgets the offline site, also after a restart', async () => {
    const lines: string[] = []
    const cli = (...args: string[]) => main([...args, '--server', server.url], (l) => lines.push(l))
    expect(await cli('forget', 'a')).toBe(1)
    expect((await refusal(client().forgetTarget('a'))).code).toBe('TARGET_LIVE')
    expect(await cli('forget', 'c')).toBe(0)
    expect(lines).toEqual(['forgot c: it is no longer a site of the projects it held'])
    const order = await client().submit({ artifact })
    expect((await client().order(order.orderId)).order.sites).toEqual({
      bound: ['a', 'b'],
      offline: [],
    })
    // The store forgot it too: a scheduler started again on it knows a and b only.
    await server.close()
    await service.close()
    await startScheduler()
    expect(service.targets().map((t) => t.target.id)).toEqual(['initiator', 'a', 'b'])
  })
})
