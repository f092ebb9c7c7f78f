/**
 * Products with integrity, on the runner's side: a product's hash is the hash of its archive,
 * the same on every target that holds a copy; an attempt reports it; a consumer refuses a copy
 * whose hash is not the one recorded, tries the next holder, and fails `input-unavailable` when
 * none serves a good copy.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { Server, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import { afterEach, describe, expect, it } from 'vitest'
import type { Assignment, JobInput } from '../../src/core/protocol.ts'
import { execute } from '../../src/runner/execute.ts'
import type { Holder } from '../../src/runner/execute.ts'
import { pack } from '../../src/runner/archive.ts'
import {
  ProductCache,
  emptyProductHash,
  productHash,
  sendProduct,
} from '../../src/runner/products.ts'
import { checkLeaks } from '../leaks.ts'

let dir: string
const servers: Server[] = []

const opened = checkLeaks()
afterEach(async () => {
  for (const s of servers.splice(0)) {
    const closed = new Promise((r) => s.close(r))
    s.closeAllConnections()
    await closed
  }
  rmSync(dir, { recursive: true, force: true })
})

/** A cache holding product `id` with one file `out/data`. */
async function cacheWith(name: string, id: string, data: string): Promise<ProductCache> {
  const cache = new ProductCache(join(dir, name), 1_000_000)
  await cache.open()
  const scratch = await cache.scratch(id)
  mkdirSync(join(scratch, 'out'))
  writeFileSync(join(scratch, 'out', 'data'), data)
  await cache.add(id, scratch)
  return cache
}

/** A holder serving a cache's products as a worker does. */
async function serving(cache: ProductCache, name: string): Promise<Holder> {
  return listen(name, (id, res) => sendProduct(cache, id, undefined, undefined, res))
}

/** A holder answering `/products/:id` with whatever `answer` writes. */
async function listen(
  name: string,
  answer: (id: string, res: ServerResponse) => Promise<void>,
): Promise<Holder> {
  const server = opened.server(
    createServer((req, res) => {
      const id = decodeURIComponent(req.url!.replace(/^\/products\//, ''))
      void answer(id, res)
    }),
    name,
  )
  servers.push(server)
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return { target: name, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }
}

/** The archive of a directory, as bytes. */
async function archive(of: string): Promise<Buffer> {
  const out = new PassThrough()
  const chunks: Buffer[] = []
  out.on('data', (c: Buffer) => chunks.push(c))
  const ended = new Promise((r) => out.on('end', r))
  await pack(of, out)
  await ended
  return Buffer.concat(chunks)
}

function consumer(input: JobInput): Assignment {
  return {
    orderId: '0',
    jobId: 'consumer',
    productId: 'consumer',
    name: 'use',
    attempt: 1,
    target: 'me',
    op: { exec: ['sh', '-c', 'cat inputs/in/data > out/copy'] },
    resources: [],
    timeoutMs: undefined,
    inputs: [input],
  }
}

describe('product hashes', () => {
  it('are the same for a copy unpacked elsewhere, whatever order its files were written in', async () => {
    dir = mkdtempSync(join(tmpdir(), 'lockstep-integrity-'))
    const a = join(dir, 'a')
    const b = join(dir, 'b')
    for (const [d, names] of [
      [a, ['z', 'a', 'm/x', 'm/a']],
      [b, ['m/a', 'a', 'm/x', 'z']],
    ] as const) {
      for (const n of names) {
        mkdirSync(join(d, n, '..'), { recursive: true })
        writeFileSync(join(d, n), `content of ${n}`)
      }
    }
    expect(await archive(a)).toEqual(await archive(b))
    expect(await productHash(a)).toBe(await productHash(b))
    writeFileSync(join(b, 'm/x'), 'altered')
    expect(await productHash(a)).not.toBe(await productHash(b))
  })

  it('of an empty product is the hash of the directory it becomes', async () => {
    dir = mkdtempSync(join(tmpdir(), 'lockstep-integrity-'))
    const cache = new ProductCache(join(dir, 'c'), 1_000_000)
    await cache.open()
    cache.addEmpty('noop-product')
    expect(await cache.hash('noop-product')).toBe(await emptyProductHash('noop-product'))
    expect(await productHash(await cache.materialise('noop-product'))).toBe(
      await emptyProductHash('noop-product'),
    )
    // Another id of the same length (its archive shares all but the id) and one whose bytes
    // outnumber its characters.
    for (const id of ['noop-producT', 'noop-prödüct']) {
      cache.addEmpty(id)
      expect(await productHash(await cache.materialise(id))).toBe(await emptyProductHash(id))
    }
    expect(await emptyProductHash('noop-producT')).not.toBe(await emptyProductHash('noop-product'))
  })

  it('is reported with the result of the attempt that made the product', async () => {
    dir = mkdtempSync(join(tmpdir(), 'lockstep-integrity-'))
    const cache = new ProductCache(join(dir, 'me'), 1_000_000)
    await cache.open()
    const made = await execute(
      {
        ...consumer({ jobId: 'x', productId: 'x', name: 'in', holders: [] }),
        inputs: [],
        op: { exec: ['sh', '-c', 'echo hello > out/greeting'] },
      },
      {
        cache,
        jobsDir: join(dir, 'jobs'),
        self: 'me',
        data: {},
        locate: () => Promise.resolve([]),
      },
    )
    expect(made.result.ok).toBe(true)
    expect(made.result.productHash).toMatch(/^[0-9a-f]{64}$/)
    expect(made.result.productHash).toBe(await productHash(cache.path('consumer')))
    const noop = await execute(
      {
        ...consumer({ jobId: 'x', productId: 'x', name: 'in', holders: [] }),
        productId: 'noop',
        inputs: [],
        op: { builtin: 'noop' },
      },
      {
        cache,
        jobsDir: join(dir, 'jobs'),
        self: 'me',
        data: {},
        locate: () => Promise.resolve([]),
      },
    )
    expect(noop.result.productHash).toBe(await emptyProductHash('noop'))
    expect(noop.result.productHash).toBe(await productHash(await cache.materialise('noop')))
  })
})

/** Runs a job reading `input` on a fresh target 'me' that finds it at `holders`. */
async function consume(input: JobInput, holders: Holder[]) {
  const cache = new ProductCache(join(dir, 'me'), 1_000_000)
  await cache.open()
  const done = await execute(consumer(input), {
    cache,
    jobsDir: join(dir, 'jobs'),
    self: 'me',
    data: {},
    locate: () => Promise.resolve(holders),
  })
  return { cache, done }
}

describe('a consumer fetching an input', () => {
  it('refuses a holder serving altered bytes and takes a good copy from the next', async () => {
    dir = mkdtempSync(join(tmpdir(), 'lockstep-integrity-'))
    const good = await cacheWith('good', 'p1', 'the real product')
    const hash = await good.hash('p1')
    const evil = await cacheWith('evil', 'p1', 'something else')
    const holders = [await serving(evil, 'evil'), await serving(good, 'good')]
    const { cache, done } = await consume(
      { jobId: 'j1', productId: 'p1', name: 'in', holders: ['evil', 'good'], hash },
      holders,
    )
    expect(done.result).toMatchObject({ ok: true })
    expect(done.added).toEqual(['p1'])
    expect(readFileSync(join(cache.path('consumer'), 'out', 'copy'), 'utf8')).toBe(
      'the real product',
    )
    expect(await cache.hash('p1')).toBe(hash)
  })

  it('fails input-unavailable, naming PRODUCT_CORRUPT, when no holder serves a good copy', async () => {
    dir = mkdtempSync(join(tmpdir(), 'lockstep-integrity-'))
    const good = await cacheWith('good', 'p1', 'the real product')
    const hash = await good.hash('p1')
    const evil = await cacheWith('evil', 'p1', 'something else')
    // A holder that answers with bytes that are no archive at all, and one with a wrong archive.
    const garbage = await listen('garbage', (_id, res) => {
      res.end('not an archive\n')
      return Promise.resolve()
    })
    const holders = [garbage, await serving(evil, 'evil')]
    const { cache, done } = await consume(
      { jobId: 'j1', productId: 'p1', name: 'in', holders: ['garbage', 'evil'], hash },
      holders,
    )
    expect(done.result).toMatchObject({ ok: false, reason: 'input-unavailable' })
    expect(done.result.message).toMatch(/evil: PRODUCT_CORRUPT/)
    expect(done.added).toEqual([])
    expect(cache.has('p1')).toBe(false)
  })
})

describe('a consumer holding an input already', () => {
  it('fetches it again when its kept copy is not the product the job reads now', async () => {
    dir = mkdtempSync(join(tmpdir(), 'lockstep-integrity-'))
    const now = await cacheWith('now', 'cache:lib', 'made again')
    const hash = await now.hash('cache:lib')
    // Its cache (reopened by consume()) keeps a copy made before.
    await cacheWith('me', 'cache:lib', 'made long ago')
    const holders = [await serving(now, 'now')]
    const { cache: me, done } = await consume(
      { jobId: 'j1', productId: 'cache:lib', name: 'in', holders: ['now'], hash },
      holders,
    )
    expect(done.result).toMatchObject({ ok: true })
    expect(done.added).toEqual(['cache:lib'])
    expect(readFileSync(join(me.path('consumer'), 'out', 'copy'), 'utf8')).toBe('made again')
  })
})

describe('a consumer holding a good copy already', () => {
  it.each([
    ['the scheduler does not count it as a holder', [], ['p1']],
    ['the scheduler counts it already', ['me'], []],
  ])('announces it when %s', async (_why, holders: string[], added: string[]) => {
    dir = mkdtempSync(join(tmpdir(), 'lockstep-integrity-'))
    const me = await cacheWith('me', 'p1', 'kept')
    const hash = await me.hash('p1')
    const { done } = await consume({ jobId: 'j1', productId: 'p1', name: 'in', holders, hash }, [])
    expect(done.result).toMatchObject({ ok: true })
    expect(done.added).toEqual(added)
  })
})
