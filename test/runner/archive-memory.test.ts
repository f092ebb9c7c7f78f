/**
 * Bounded memory for products: a product far larger than the bound crosses real HTTP, from a
 * holder serving it as a worker does (`sendProduct`) to an unpack on disk, straight to a peer
 * and through the scheduler's relay to the CLI's client, and the process grows by a small
 * fraction of it: nothing on the way holds a whole file, let alone a product. Holder, relay and
 * consumer share this process, so the bound covers all of them at once.
 */
import { createWriteStream, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs'
import { createServer } from 'node:http'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { afterEach, describe, expect, it } from 'vitest'
import { LockstepClient } from '../../src/client/client.ts'
import { unpack } from '../../src/runner/archive.ts'
import { ProductCache, productHash, sendProduct } from '../../src/runner/products.ts'
import { startServer } from '../../src/server/server.ts'
import { SchedulerService } from '../../src/service/service.ts'
import { SqliteStore } from '../../src/store/sqlite-store.ts'
import { checkLeaks } from '../leaks.ts'

const MiB = 1024 ** 2
const PRODUCT = 200 * MiB
const BOUND = 64 * MiB
const WORKER = 'worker-token-123'

// What is live, not what awaits the collector: garbage piles up between collections as the
// collector pleases, and would make the measure a coin toss.
setFlagsFromString('--expose-gc')
const collect = runInNewContext('gc') as () => void

/** What the process holds, after a collection: the JS heap and the buffers outside it. */
const held = () => {
  collect()
  const m = process.memoryUsage()
  return m.heapUsed + m.arrayBuffers
}

let dir: string
const closing: (() => Promise<void>)[] = []
const opened = checkLeaks()
afterEach(async () => {
  for (const close of closing.splice(0).reverse()) await close()
  rmSync(dir, { recursive: true, force: true })
})

/** A holder whose cache keeps product `id`: one file of {@link PRODUCT} bytes, written a MiB at a time. */
async function holder(id: string): Promise<{ cache: ProductCache; url: string }> {
  const cache = new ProductCache(join(dir, 'holder'), 1024 ** 3)
  await cache.open()
  const scratch = await cache.scratch(id)
  mkdirSync(join(scratch, 'out'))
  const chunk = Buffer.alloc(MiB, 'lockstep ')
  await pipeline(
    Readable.from(
      (function* () {
        for (let left = PRODUCT; left > 0; left -= chunk.length) yield chunk.subarray(0, left)
      })(),
    ),
    createWriteStream(join(scratch, 'out', 'data')),
  )
  await cache.add(id, scratch)
  const server: Server = opened.server(
    createServer((_req, res) => void sendProduct(cache, id, undefined, undefined, res)),
    'holder',
  )
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  closing.push(async () => {
    const closed = new Promise((r) => server.close(r))
    server.closeAllConnections()
    await closed
  })
  return { cache, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }
}

/** Runs `move`, sampling what the process holds; the most it held beyond where it started. */
async function peakDuring(move: () => Promise<void>): Promise<number> {
  const baseline = held()
  let peak = 0
  const sampler = setInterval(() => (peak = Math.max(peak, held() - baseline)), 100)
  try {
    await move()
  } finally {
    clearInterval(sampler)
  }
  return Math.max(peak, held() - baseline)
}

describe(`a ${PRODUCT / MiB} MiB product`, () => {
  it(`moves from a holder to a peer's disk holding less than ${BOUND / MiB} MiB`, async () => {
    dir = mkdtempSync(join(tmpdir(), 'lockstep-memory-'))
    const { cache, url } = await holder('big')
    const peak = await peakDuring(async () => {
      const res = await fetch(`${url}/products/big`)
      await unpack(Readable.fromWeb(res.body as never), join(dir, 'copy'))
    })
    expect(statSync(join(dir, 'copy', 'out', 'data')).size).toBe(PRODUCT)
    expect(peak).toBeLessThan(BOUND)
    // The copy is the product: it archives to the same hash.
    expect(await productHash(join(dir, 'copy'))).toBe(await cache.hash('big'))
    console.log(`peer: at most ${(peak / MiB).toFixed(1)} MiB more`)
  })

  it(`moves through the scheduler's relay to the CLI's disk holding less than ${BOUND / MiB} MiB`, async () => {
    dir = mkdtempSync(join(tmpdir(), 'lockstep-memory-'))
    const service = opened.service(
      await SchedulerService.start({ store: new SqliteStore({ path: join(dir, 'db') }) }),
    )
    const server = opened.server(
      await startServer({
        service,
        port: 0,
        tokens: [{ role: 'worker', name: 'w*', token: WORKER }],
      }),
    )
    closing.push(() => service.close())
    closing.push(() => server.close())
    // w1 makes a product, as a worker would, and is its only holder: whatever id it is asked
    // for, its product server answers with its one big product.
    await service.submitPacket(
      { name: 'p', jobs: [{ name: 'p1', op: { builtin: 'noop' } }] },
      {},
      'ops',
    )
    const { url } = await holder('made-by-w1')
    await fetch(`${server.url}/v1/targets`, {
      method: 'POST',
      headers: { authorization: `Bearer ${WORKER}`, 'content-type': 'application/json' },
      body: JSON.stringify({ id: 'w1', url }),
    })
    const [a] = (await service.heartbeat('w1', { free: 1 })).assignments
    await service.heartbeat('w1', {
      results: [{ jobId: a!.jobId, attempt: 1, result: { ok: true } }],
    })
    const client = new LockstepClient({ url: server.url, token: WORKER })
    const peak = await peakDuring(async () => {
      await unpack(await client.productContent(a!.productId), join(dir, 'download'))
    })
    expect(statSync(join(dir, 'download', 'out', 'data')).size).toBe(PRODUCT)
    expect(peak).toBeLessThan(BOUND)
    console.log(`relay: at most ${(peak / MiB).toFixed(1)} MiB more`)
  })
})
