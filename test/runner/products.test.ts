import { mkdtempSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { treeBytes } from '../../src/runner/archive.ts'
import { execute } from '../../src/runner/execute.ts'
import { ProductCache, productHash } from '../../src/runner/products.ts'

let dir: string

afterEach(() => rmSync(dir, { recursive: true, force: true }))

/** A product directory holding one file of `bytes` bytes. */
async function made(cache: ProductCache, id: string, bytes: number): Promise<string[]> {
  const scratch = await cache.scratch(id)
  mkdirSync(join(scratch, 'out'))
  writeFileSync(join(scratch, 'out', 'data'), 'x'.repeat(bytes))
  return cache.add(id, scratch)
}

describe('the product cache', () => {
  it('hashes an empty product as the archive of the directory it becomes when served', async () => {
    dir = mkdtempSync(join(tmpdir(), 'lockstep-cache-'))
    const cache = new ProductCache(dir, 10_000)
    await cache.open()
    cache.addEmpty('01a2-empty')
    const hash = await cache.hash('01a2-empty')
    expect(hash).toMatch(/^[0-9a-f]{64}$/)
    // Consumers check what the holder serves, the materialised directory, against this hash.
    expect(await productHash(await cache.materialise('01a2-empty'))).toBe(hash)
    cache.addEmpty('01a2-other')
    expect(await cache.hash('01a2-other')).not.toBe(hash)
  })

  it('evicts the oldest products beyond its limit, but never one a running job reads', async () => {
    dir = mkdtempSync(join(tmpdir(), 'lockstep-cache-'))
    const cache = new ProductCache(dir, 250)
    await cache.open()
    expect(await made(cache, 'a', 100)).toEqual([])
    await made(cache, 'b', 100)
    cache.pin('a')
    // a is the oldest, but pinned: b goes.
    expect(await made(cache, 'c', 100)).toEqual(['b'])
    cache.unpin('a')
    expect(await made(cache, 'd', 100)).toEqual(['a'])
    expect(cache.ids().sort()).toEqual(['c', 'd'])
  })

  it('counts a product as its files whether its bytes are given or walked, its id file once', async () => {
    dir = mkdtempSync(join(tmpdir(), 'lockstep-cache-'))
    // Two products of 100 bytes and a 1-byte id file each fill it exactly.
    const cache = new ProductCache(dir, 202)
    await cache.open()
    // As a fetched product arrives: unpacked with its id file, its bytes counted by the unpack.
    const fetched = await cache.scratch('a')
    mkdirSync(join(fetched, 'out'))
    writeFileSync(join(fetched, 'out', 'data'), 'x'.repeat(100))
    writeFileSync(join(fetched, '.product-id'), 'a')
    expect(await cache.add('a', fetched, await treeBytes(fetched))).toEqual([])
    expect(await made(cache, 'b', 100)).toEqual([])
    expect(await made(cache, 'c', 100)).toEqual(['a'])
  })

  it('keeps products whose ids are not file names, and finds them again after a restart', async () => {
    dir = mkdtempSync(join(tmpdir(), 'lockstep-cache-'))
    const cache = new ProductCache(dir, 10_000)
    await cache.open()
    await made(cache, 'cache:lib/a@1', 10)
    const again = new ProductCache(dir, 10_000)
    expect(await again.open()).toEqual(['cache:lib/a@1'])
  })

  it.each([
    ['over the cap fails output-too-large, naming the cap, and is not kept', 4096, false],
    ['within the cap is kept', 64 * 1024, true],
  ])('a product %s', async (_, maxProductBytes, kept) => {
    dir = mkdtempSync(join(tmpdir(), 'lockstep-cache-'))
    const cache = new ProductCache(join(dir, 'cache'), 1024 ** 3)
    await cache.open()
    const done = await execute(
      {
        orderId: '0',
        jobId: 'big',
        productId: 'big',
        name: 'big',
        attempt: 1,
        target: 'me',
        // 5000 bytes in out/: over 4 KiB, under 64 KiB.
        op: {
          exec: ['sh', '-c', 'head -c 3000 /dev/zero > out/a && head -c 2000 /dev/zero > out/b'],
        },
        resources: [],
        timeoutMs: undefined,
        inputs: [],
      },
      {
        cache,
        jobsDir: join(dir, 'jobs'),
        self: 'me',
        data: {},
        locate: () => Promise.resolve([]),
        maxProductBytes,
      },
    )
    if (kept) {
      expect(done.result).toMatchObject({ ok: true })
      expect(cache.has('big')).toBe(true)
      return
    }
    expect(done.result).toEqual({
      ok: false,
      reason: 'output-too-large',
      message:
        'the product (out/, stdout and stderr) holds more than 4 KiB, the cap on a product (--max-product-bytes)',
    })
    expect(cache.has('big')).toBe(false)
    // Neither the product nor its job directory is left on disk.
    expect(readdirSync(join(dir, 'cache', 'incoming'))).toEqual([])
    expect(readdirSync(join(dir, 'cache', 'products'))).toEqual([])
    expect(readdirSync(join(dir, 'jobs'))).toEqual([])
  })
})
