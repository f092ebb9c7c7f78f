/**
 * A real scheduler process rides out a PostgreSQL outage: it reaches the database through a TCP
 * proxy the test cuts and restores. While cut, writes are answered 503 with Retry-After and
 * STORE_UNAVAILABLE, reads of what is in memory are 200, /readyz is 503 and /healthz 200; once
 * restored, the scheduler carries on by itself: what was acknowledged before the cut is there,
 * a new submission works, /readyz is 200, and every order acknowledged is stored.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { StoreUnavailableError } from '../../src/core/errors.ts'
import { checkLeaks } from '../leaks.ts'
import { pgUrl, postgresBackend } from '../store/backends.ts'
import type { Backend } from '../store/backends.ts'
import { Cluster, WORKBENCH, sh } from './cluster.ts'
import { TcpProxy } from './tcp-proxy.ts'

const opened = checkLeaks()

/** A packet whose one job waits for an `exec` worker: its order stays in memory. */
const waiting = (name: string) => ({ packet: { name, jobs: [{ name: 'a', op: sh('true') }] } })

describe('a PostgreSQL outage', () => {
  let backend: Backend
  let proxy: TcpProxy
  let cluster: Cluster

  afterEach(async () => {
    await cluster.stopAll()
    await proxy.close()
    await backend.destroy()
  })

  it('is ridden out: 503 with Retry-After while cut, reads from memory, and on after', async () => {
    backend = postgresBackend('outage')
    proxy = await new TcpProxy('127.0.0.1', Number(new URL(pgUrl).port || 5432)).listen()
    const url = new URL(backend.url)
    url.port = String(proxy.port)
    url.searchParams.set('connect_timeout', '2')
    cluster = new Cluster({ databaseUrl: url.toString(), opened })
    const server = await cluster.server()
    const call = (method: string, path: string, body?: unknown) =>
      fetch(`${cluster.url}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${WORKBENCH}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      })
    const acknowledged: string[] = []
    const submit = async (name: string) => {
      const res = await call('POST', '/v1/orders', waiting(name))
      const body = (await res.json()) as { orderId?: string; error?: { code: string } }
      if (res.status === 201) acknowledged.push(body.orderId!)
      return { res, body }
    }

    const before = await submit('before')
    expect(before.res.status).toBe(201)
    expect((await call('GET', '/readyz')).status).toBe(200)

    // Submissions race the cut: each is stored and acknowledged, or refused; never a 500.
    const racing = Array.from({ length: 20 }, (_, i) => submit(`racing-${i}`))
    await new Promise((resolve) => setTimeout(resolve, 5))
    proxy.cut()
    const raced = await Promise.all(racing)
    for (const r of raced) expect([201, 503]).toContain(r.res.status)
    // The session holding the schema drops with the cut: the scheduler knows before any write.
    await expect
      .poll(async () => (await call('GET', '/readyz')).status, { timeout: 10_000 })
      .toBe(503)
    const ready = await call('GET', '/readyz')
    expect(ready.headers.get('retry-after')).toMatch(/^\d+$/)
    const status = (await ready.json()) as { ready: boolean; fault?: string }
    expect(status.ready).toBe(false)
    expect(status.fault).toMatch(/session holding the store ended|ECONNRESET|EPIPE|terminated/)
    for (let i = 0; i < 5; i++) {
      const during = await submit(`during-${i}`)
      expect(during.res.status).toBe(503)
      expect(during.body.error?.code).toBe('STORE_UNAVAILABLE')
      expect(Number(during.res.headers.get('retry-after'))).toBeGreaterThanOrEqual(1)
    }
    // The client turns the answer into an error that says when to try again.
    const refused = await cluster
      .client()
      .submit(waiting('client'))
      .catch((e: unknown) => e)
    expect(refused).toBeInstanceOf(StoreUnavailableError)
    expect((refused as StoreUnavailableError).retryAfterS).toBeGreaterThanOrEqual(1)
    const read = await call('GET', `/v1/orders/${before.body.orderId}`)
    expect(read.status).toBe(200)
    expect((await call('GET', '/healthz')).status).toBe(200)

    proxy.restore()
    await expect
      .poll(async () => (await call('GET', '/readyz')).status, { timeout: 20_000 })
      .toBe(200)
    const after = await submit('after')
    expect(after.res.status).toBe(201)
    expect((await call('GET', `/v1/orders/${before.body.orderId}`)).status).toBe(200)
    expect(server.child.exitCode).toBe(null)

    // Nothing was acknowledged that is not stored.
    const stored = await backend.query<{ id: string }>(`SELECT encode(id, 'hex') AS id FROM orders`)
    const ids = new Set(stored.map((r) => r.id))
    for (const id of acknowledged) expect(ids).toContain(id.replace(/-/g, ''))
    expect(acknowledged).toHaveLength(2 + raced.filter((r) => r.res.status === 201).length)
  })
})
