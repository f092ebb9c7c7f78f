/**
 * A real PostgreSQL restart under a real scheduler process. The shared server must never be
 * stopped, so this test makes a private cluster (initdb, pg_ctl) on a free port in a temp dir,
 * run as the `postgres` user when the test runs as root (PostgreSQL refuses root). The
 * scheduler rides out a fast shutdown (57P01) and carries on once the cluster is back.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { checkLeaks } from '../leaks.ts'
import { Cluster, WORKBENCH, sh } from './cluster.ts'
import { privatePostgres } from './private-postgres.ts'
import type { PrivatePostgres } from './private-postgres.ts'

const opened = checkLeaks()

describe('a PostgreSQL restart', () => {
  let postgres: PrivatePostgres | undefined
  let cluster: Cluster | undefined

  afterEach(async () => {
    await cluster?.stopAll()
    postgres?.destroy()
  })

  it('is ridden out by a scheduler, which carries on when the database is back', async () => {
    const pgServer = (postgres = await privatePostgres())
    cluster = new Cluster({ databaseUrl: `${pgServer.url}?connect_timeout=2`, opened })
    const server = await cluster.server()
    const submit = (name: string) =>
      fetch(`${cluster!.url}/v1/orders`, {
        method: 'POST',
        headers: { authorization: `Bearer ${WORKBENCH}`, 'content-type': 'application/json' },
        body: JSON.stringify({ packet: { name, jobs: [{ name: 'a', op: sh('true') }] } }),
      })
    const ready = async () => (await fetch(`${cluster!.url}/readyz`)).status
    const before = (await (await submit('before')).json()) as { orderId: string }

    pgServer.halt()
    await expect.poll(ready, { timeout: 10_000 }).toBe(503)
    const during = await submit('during')
    expect(during.status).toBe(503)
    expect(during.headers.get('retry-after')).toMatch(/^\d+$/)
    expect(
      (
        await fetch(`${cluster.url}/v1/orders/${before.orderId}`, {
          headers: { authorization: `Bearer ${WORKBENCH}` },
        })
      ).status,
    ).toBe(200)

    pgServer.start()
    await expect.poll(ready, { timeout: 15_000 }).toBe(200)
    expect((await submit('after')).status).toBe(201)
    expect(server.child.exitCode).toBe(null)
    const order = await cluster.client().order(before.orderId)
    expect(order.fulfilment.state).toBe('running')
  })
})
