/**
 * One scheduler per store, with real server processes on both backends: a second server on the
 * same SQLite file or PostgreSQL schema refuses to start and names the process that holds it;
 * once that one is killed with SIGKILL, a new server starts on the store at once and carries on
 * with what the first acknowledged.
 */
import { hostname } from 'node:os'
import { afterEach, describe, expect, it } from 'vitest'
import { checkLeaks } from '../leaks.ts'
import { backends } from '../store/backends.ts'
import type { Backend } from '../store/backends.ts'
import { Cluster, sh } from './cluster.ts'

const opened = checkLeaks()

describe.each(backends)('one scheduler per store (%s)', (_name, make) => {
  let backend: Backend
  const clusters: Cluster[] = []

  afterEach(async () => {
    for (const c of clusters.splice(0)) await c.stopAll()
    await backend.destroy()
  })

  it('refuses a second server, naming the first; after SIGKILL of the first, one starts', async () => {
    backend = make('one-scheduler')
    const cluster = () => {
      const c = new Cluster({ databaseUrl: backend.url, opened })
      clusters.push(c)
      return c
    }
    const first = cluster()
    const holder = await first.server()
    const order = await first
      .client()
      .submit({ packet: { name: 'p', jobs: [{ name: 'a', op: sh('true') }] } })

    const second = cluster()
    const refusal = await second.server().then(
      () => new Error('the second server started'),
      (e: unknown) => e as Error,
    )
    expect(refusal.message).toMatch(/exited 1/)
    expect(refusal.message).toContain(`held by process ${holder.child.pid} on ${hostname()} since`)

    holder.child.kill('SIGKILL')
    await holder.exited
    await second.server()
    expect(await second.client().order(order.orderId)).toMatchObject({
      fulfilment: { state: 'running' },
    })
  })
})
