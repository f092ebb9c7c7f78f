/**
 * Products within bounds, between real processes: a `lockstep worker --max-product-bytes` fails
 * a job that leaves more (`output-too-large`, naming the cap) and keeps one that fits; a
 * `lockstep worker --max-input-bytes` refuses a larger input fetched from its peer, and that
 * fetch fails the attempt with the cap named; `lockstep download --max-bytes` refuses a larger
 * product, naming it, and leaves no folder for it. One backend: the limits live in the workers
 * and the CLI, not in the store.
 */
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { download } from '../../src/cli/workbench-commands.ts'
import { checkLeaks } from '../leaks.ts'
import { sqliteBackend } from '../store/backends.ts'
import type { Backend } from '../store/backends.ts'
import { Cluster, WORKBENCH, sh } from './cluster.ts'

const opened = checkLeaks()

/** A job on `target` leaving `bytes` bytes in out/data. */
const writes = (name: string, bytes: number, target: string) => ({
  name,
  op: sh(`head -c ${bytes} /dev/zero > "$LOCKSTEP_OUT/data"`),
  target,
})

describe('product limits', () => {
  let backend: Backend
  let cluster: Cluster

  beforeEach(() => {
    backend = sqliteBackend()
    cluster = new Cluster({ databaseUrl: backend.url, opened })
  })

  afterEach(async () => {
    await cluster.stopAll()
    await backend.destroy()
  })

  it('fails a job whose product is over --max-product-bytes and keeps one within it', async () => {
    await cluster.server()
    await cluster.worker('w1', ['--max-product-bytes', '4KiB'])
    const c = cluster.client()
    const small = await c.submit({ packet: { name: 'small', jobs: [writes('s', 1000, 'w1')] } })
    expect((await cluster.finished(small.orderId)).state).toBe('succeeded')
    const big = await c.submit({ packet: { name: 'big', jobs: [writes('b', 8192, 'w1')] } })
    expect((await cluster.finished(big.orderId)).state).toBe('failed')
    const [job] = await c.jobs(big.orderId)
    const attempts = (await c.job(job!.id)).attempts
    expect(attempts.map((a) => [a.state, a.reason, a.message])).toEqual([
      [
        'failed',
        'output-too-large',
        'the product (out/, stdout and stderr) holds more than 4 KiB, the cap on a product (--max-product-bytes)',
      ],
    ])
  }, 30_000)

  it('refuses an input over --max-input-bytes fetched from a peer, naming the cap', async () => {
    await cluster.server()
    await cluster.worker('w1')
    await cluster.worker('w2', ['--max-input-bytes', '4KiB'])
    const c = cluster.client()
    const order = await c.submit({
      packet: {
        name: 'pass',
        jobs: [
          writes('make', 8192, 'w1'),
          { name: 'read', op: sh('true'), after: ['make'], target: 'w2' },
        ],
      },
    })
    expect((await cluster.finished(order.orderId)).state).toBe('failed')
    const read = (await c.jobs(order.orderId)).find((j) => j.name === 'read')!
    const [attempt] = (await c.job(read.id)).attempts
    expect(attempt?.reason).toBe('input-unavailable')
    // Every source is refused the same way: the peer, then the scheduler's relay.
    expect(attempt?.message).toContain(
      "w1: the archive is refused at entry 'out/data': the archive unpacks to more than 4 KiB, the cap (--max-input-bytes)",
    )
  }, 30_000)

  it('downloads within --max-bytes, and refuses a larger product leaving no folder', async () => {
    await cluster.server()
    await cluster.worker('w1')
    const c = cluster.client()
    const order = await c.submit({
      packet: { name: 'one', jobs: [writes('big', 8192, 'w1')] },
    })
    expect((await cluster.finished(order.orderId)).state).toBe('succeeded')
    const flags = ['--server', cluster.url, '--token', WORKBENCH]
    const to = join(cluster.dir, 'downloads')
    const [product] = await c.products(order.orderId)
    await expect(
      download([order.orderId, ...flags, '--to', to, '--max-bytes', '4KiB'], () => {}),
    ).rejects.toThrow(
      `product big (${product!.productId}): the archive is refused at entry 'out/data': the archive unpacks to more than 4 KiB, the cap (--max-bytes)`,
    )
    expect(existsSync(join(to, 'big'))).toBe(false)
    const said: string[] = []
    await download([order.orderId, ...flags, '--to', join(cluster.dir, 'ok')], (l) => said.push(l))
    expect(said).toEqual([`1 products in ${join(cluster.dir, 'ok')}`])
    expect(readFileSync(join(cluster.dir, 'ok', 'big', 'out', 'data')).length).toBe(8192)
  }, 30_000)
})
