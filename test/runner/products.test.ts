import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { ProductCache } from '../../src/runner/products.ts'

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

  it('keeps products whose ids are not file names, and finds them again after a restart', async () => {
    dir = mkdtempSync(join(tmpdir(), 'lockstep-cache-'))
    const cache = new ProductCache(dir, 10_000)
    await cache.open()
    await made(cache, 'cache:lib/a@1', 10)
    const again = new ProductCache(dir, 10_000)
    expect(await again.open()).toEqual(['cache:lib/a@1'])
  })
})
