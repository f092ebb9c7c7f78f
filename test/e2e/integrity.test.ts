/**
 * Products with integrity through the whole path, in one process: the scheduler (service and
 * HTTP server), a real worker agent, and two hand-driven holders behind small HTTP servers. The
 * maker of a product reported its true hash but serves other bytes; another holder, sent to fetch
 * it, serves the true ones. The worker reading it refuses the first copy (PRODUCT_CORRUPT), takes
 * the second, and its job reads the true bytes. A worker announcing a product it never made or
 * fetched is not among the holders anyone is sent to.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { Assignment } from '../../src/core/protocol.ts'
import { ProductCache, sendProduct } from '../../src/runner/products.ts'
import { SchedulerService } from '../../src/service/service.ts'
import { startServer } from '../../src/server/server.ts'
import type { RunningServer } from '../../src/server/server.ts'
import { SqliteStore } from '../../src/store/sqlite-store.ts'
import { WorkerAgent } from '../../src/worker/agent.ts'
import { checkLeaks } from '../leaks.ts'

const opened = checkLeaks()

let dir: string
let service: SchedulerService
let server: RunningServer
let agent: WorkerAgent | undefined
const holders: Server[] = []

afterEach(async () => {
  await agent?.stop()
  agent = undefined
  await server.close()
  await service.close()
  for (const h of holders.splice(0)) {
    const closed = new Promise((r) => h.close(r))
    h.closeAllConnections()
    await closed
  }
  rmSync(dir, { recursive: true, force: true })
})

/** A hand-driven holder: a cache served at `/products/:id`, and the ids it was asked for. */
async function holder(name: string) {
  const cache = new ProductCache(join(dir, name), 1_000_000)
  await cache.open()
  const asked: string[] = []
  const http = opened.server(
    createServer((req, res) => {
      const id = decodeURIComponent(req.url!.replace(/^\/products\//, ''))
      asked.push(id)
      void sendProduct(cache, id, undefined, undefined, res)
    }),
    name,
  )
  holders.push(http)
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r))
  const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}`
  await service.registerTarget({ id: name, url })
  /** Keeps a product with one file `out/data`. */
  const keep = async (id: string, data: string) => {
    const scratch = await cache.scratch(id)
    mkdirSync(join(scratch, 'out'))
    writeFileSync(join(scratch, 'out', 'data'), data)
    await cache.add(id, scratch)
    return cache.hash(id)
  }
  const take = async (): Promise<Assignment> => {
    const [a] = (await service.heartbeat(name, { free: 1 })).assignments
    return a!
  }
  return { cache, asked, keep, take }
}

describe('products with integrity, end to end', () => {
  it('a worker refuses a holder serving altered bytes and reads a good copy from the next', async () => {
    dir = mkdtempSync(join(tmpdir(), 'lockstep-integrity-e2e-'))
    service = opened.service(
      await SchedulerService.start({ store: new SqliteStore({ path: join(dir, 'db') }) }),
    )
    server = opened.server(await startServer({ service, port: 0 }))
    const evil = await holder('evil')
    const honest = await holder('honest')
    const order = await service.submitPacket(
      {
        name: 'p',
        jobs: [
          { name: 'make', op: { builtin: 'noop' }, target: 'evil' },
          { name: 'grab', op: { builtin: 'noop' }, after: ['make'], target: 'honest' },
          {
            name: 'use',
            op: { exec: ['sh', '-c', 'cat inputs/make/data > out/copy'] },
            after: ['make', 'grab'],
            target: 'w1',
          },
        ],
      },
      {},
      'ana',
    )

    // The maker reports the true hash, but keeps (and serves) other bytes.
    const make = await evil.take()
    const trueHash = await honest.keep(make.productId, 'the true product')
    await evil.keep(make.productId, 'a forgery')
    await service.heartbeat('evil', {
      results: [{ jobId: make.jobId, attempt: 1, result: { ok: true, productHash: trueHash } }],
    })
    // Another holder, sent to fetch it, holds the true bytes and says so.
    const grab = await honest.take()
    expect(grab.inputs).toMatchObject([{ productId: make.productId, hash: trueHash }])
    honest.cache.addEmpty(grab.productId)
    const grabHash = await honest.cache.hash(grab.productId)
    await service.heartbeat('honest', {
      results: [{ jobId: grab.jobId, attempt: 1, result: { ok: true, productHash: grabHash } }],
      added: [make.productId],
    })
    // A planted announcement changes nothing.
    await service.heartbeat('evil', { added: [grab.productId] })
    expect(service.holders(make.productId).map((h) => h.target)).toEqual(['evil', 'honest'])
    expect(service.holders(grab.productId).map((h) => h.target)).toEqual(['honest'])

    const ended = new Promise<string>((resolve) =>
      service.on((e) => {
        if (e.type.startsWith('order:') && e.type !== 'order:submitted') resolve(e.type)
      }),
    )
    agent = await WorkerAgent.start({
      server: server.url,
      id: 'w1',
      cacheDir: join(dir, 'w1'),
      waitMs: 200,
    })
    expect(await ended).toBe('order:succeeded')
    expect((await service.fulfilment(order.orderId)).state).toBe('succeeded')
    // The forgery was offered first and refused; the true copy was read.
    expect(evil.asked).toContain(make.productId)
    expect(honest.asked).toContain(make.productId)
    const use = (await service.jobs(order.orderId)).find((j) => j.name === 'use')!
    const copy = join(dir, 'w1', 'products', use.id, 'out', 'copy')
    expect(readFileSync(copy, 'utf8')).toBe('the true product')
  })
})
