/**
 * The final product comes home (seed 001): once an order succeeds, the scheduler fetches its last
 * jobs' products into its own store, so `lockstep download` still gets them after every worker
 * process has stopped, and after the scheduler's own restart. And downloads are the server's
 * choice for every role: an admin token is refused them on a server started without
 * `--allow-download`, while workers still fetch. Real `lockstep server` and `lockstep worker`
 * processes, once per backend.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { main } from '../../src/cli/main.ts'
import { LockstepClient } from '../../src/client/client.ts'
import { LockstepError } from '../../src/core/errors.ts'
import { checkLeaks } from '../leaks.ts'
import { backends } from '../store/backends.ts'
import type { Backend } from '../store/backends.ts'
import { Cluster, WORKBENCH, WORKER } from './cluster.ts'

const opened = checkLeaks()

const sh = (script: string) => ({ exec: ['sh', '-c', script] })

/** w1 makes a greeting; w2 reads it and writes it out again, shouted: the last job. */
const makeThenShout = {
  name: 'shout',
  jobs: [
    { name: 'make', op: sh('printf hello > "$LOCKSTEP_OUT/greeting"'), target: 'w1' },
    {
      name: 'shout',
      op: sh('tr a-z A-Z < "$LOCKSTEP_INPUTS/make/greeting" > "$LOCKSTEP_OUT/greeting"'),
      after: ['make'],
      target: 'w2',
    },
  ],
}

/** Polls the order's product list until `done` holds for it (bounded). */
async function productsUntil(
  c: LockstepClient,
  orderId: string,
  done: (p: Awaited<ReturnType<LockstepClient['products']>>) => boolean,
  timeoutMs = 20_000,
) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const products = await c.products(orderId)
    if (done(products)) return products
    if (Date.now() > deadline) {
      throw new Error(`products never settled: ${JSON.stringify(products)}`)
    }
    await new Promise((r) => setTimeout(r, 50))
  }
}

const heldBy = (p: { holders: { target: string }[] } | undefined) =>
  (p?.holders ?? []).map((h) => h.target).sort()

describe.each(backends)('final products: %s', (_name, make) => {
  let backend: Backend
  let cluster: Cluster

  beforeEach(() => {
    backend = make('final-products')
    cluster = new Cluster({ databaseUrl: backend.url, opened })
  })

  afterEach(async () => {
    await cluster.stopAll()
    await backend.destroy()
  })

  it('downloads the last product of an order after every worker has stopped', async () => {
    const server = await cluster.server()
    const w1 = await cluster.worker('w1')
    const w2 = await cluster.worker('w2')
    const c = cluster.client()
    const order = await c.submit({ packet: makeThenShout })
    expect((await cluster.finished(order.orderId)).state).toBe('succeeded')

    // The scheduler brings the last job's product home; the one between stays on the workers.
    const products = await productsUntil(c, order.orderId, (ps) =>
      heldBy(ps.find((p) => p.name === 'shout')).includes('initiator'),
    )
    expect(heldBy(products.find((p) => p.name === 'shout'))).toEqual(['initiator', 'w2'])
    expect(heldBy(products.find((p) => p.name === 'make'))).toEqual(['w1', 'w2'])

    // Every worker stops: w2 leaves; w1 is killed, and stays listed as holding `make` until its
    // lease ends, though nothing answers there. Only the scheduler serves anything now.
    w1.child.kill('SIGKILL')
    w2.child.kill('SIGTERM')
    await Promise.all([w1.exited, w2.exited])
    const left = await productsUntil(c, order.orderId, (ps) =>
      ps.every((p) => p.holders.every((h) => h.target === 'initiator' || h.target === 'w1')),
    )
    expect(heldBy(left.find((p) => p.name === 'shout'))).toEqual(['initiator'])

    const lines: string[] = []
    const cli = (...args: string[]) =>
      main([...args, '--server', cluster.url, '--token', WORKBENCH], (l) => lines.push(l))
    const to = join(cluster.dir, 'download')
    expect(await cli('download', order.orderId, '--to', to)).toBe(0)
    expect(readFileSync(join(to, 'shout', 'out', 'greeting'), 'utf8')).toBe('HELLO')
    expect(lines).toEqual([`1 products in ${to}; no live target holds make`])

    // The scheduler keeps them across its own restart: its cache and the record of it are stored.
    server.child.kill('SIGTERM')
    await server.exited
    await cluster.server()
    const again = join(cluster.dir, 'again')
    expect(await cli('download', order.orderId, '--to', again)).toBe(0)
    expect(readFileSync(join(again, 'shout', 'out', 'greeting'), 'utf8')).toBe('HELLO')
  }, 60_000)

  it('refuses an admin downloads on a server without --allow-download; workers still fetch', async () => {
    await cluster.server([], { allowDownload: false })
    await cluster.worker('w1')
    await cluster.worker('w2')
    const admin = cluster.client(WORKBENCH) // the cluster's workbench token is an admin's
    const order = await admin.submit({ packet: makeThenShout })
    expect((await cluster.finished(order.orderId)).state).toBe('succeeded')
    const [, shout] = await admin.jobs(order.orderId)

    const code = async (p: Promise<unknown>) =>
      p.then(
        () => 'answered',
        (e: unknown) => (e instanceof LockstepError ? e.code : String(e)),
      )
    expect(await code(admin.products(order.orderId))).toBe('DOWNLOAD_DISABLED')
    expect(await code(drain(admin.productContent(shout!.id)))).toBe('DOWNLOAD_DISABLED')
    const lines: string[] = []
    expect(
      await main(['download', order.orderId, '--server', cluster.url, '--token', WORKBENCH], (l) =>
        lines.push(l),
      ),
    ).toBe(1)
    expect(lines).toEqual([])

    // A worker token still fetches the same product through the scheduler: inputs move so.
    const worker = new LockstepClient({ url: cluster.url, token: WORKER })
    expect(await code(drain(worker.productContent(shout!.id)))).toBe('answered')
  }, 60_000)
})

/** Reads a product's archive to the end. */
async function drain(content: Promise<AsyncIterable<Uint8Array>>): Promise<void> {
  for await (const chunk of await content) void chunk
}
