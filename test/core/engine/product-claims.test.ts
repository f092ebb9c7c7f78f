import { describe, expect, it } from 'vitest'
import type { JobState } from '../../../src/index.ts'
import { ProductClaims } from '../../../src/core/engine/product-claims.ts'

interface Job {
  productId: string
  job: { id: string; attempt: number; state: JobState }
}

function job(id: string, productId = id, state: JobState = 'ready', attempt = 0): Job {
  return { productId, job: { id, attempt, state } }
}

function claims(held: Record<string, string> = {}) {
  const scheduled: string[] = []
  const c = new ProductClaims<Job>(
    (j) => scheduled.push(j.job.id),
    (productId) => held[productId],
  )
  return { c, scheduled }
}

describe('ProductClaims', () => {
  it('schedules one maker per product; the others follow it', () => {
    const { c, scheduled } = claims()
    const [a, b, d] = [job('a', 'k'), job('b', 'k'), job('d', 'other')]
    for (const j of [a, b, d]) c.claim(j)
    expect(scheduled).toEqual(['a', 'd'])
    expect(c.leader('k')).toBe(a)
  })

  it('hands the product to the ready followers when the maker succeeds', () => {
    const { c, scheduled } = claims()
    const [a, b, e] = [job('a', 'k'), job('b', 'k'), job('e', 'k')]
    const cancelled = job('x', 'k')
    for (const j of [a, b, cancelled, e]) c.claim(j)
    cancelled.job.state = 'cancelled'
    expect(c.stepDown(a, 'w1')).toEqual([b, e])
    expect(c.leader('k')).toBeUndefined()
    expect(scheduled).toEqual(['a'])
  })

  it('lets the first ready follower make the product when the maker fails', () => {
    const { c, scheduled } = claims()
    const [a, b, e] = [job('a', 'k'), job('b', 'k'), job('e', 'k')]
    for (const j of [a, b, e]) c.claim(j)
    expect(c.stepDown(a, undefined)).toEqual([])
    expect(scheduled).toEqual(['a', 'b'])
    expect(c.leader('k')).toBe(b)
    // The rest still follow the new maker.
    expect(c.stepDown(b, 'w2')).toEqual([e])
  })

  it('ignores a job stepping down that does not make the product', () => {
    const { c } = claims()
    const [a, b] = [job('a', 'k'), job('b', 'k')]
    c.claim(a)
    c.claim(b)
    expect(c.stepDown(b, 'w1')).toEqual([])
    expect(c.leader('k')).toBe(a)
  })

  it.each([
    { name: 'a cache key held by a live target', j: job('a', 'k'), holder: 'w1' },
    { name: 'a product nobody holds', j: job('a', 'none'), holder: undefined },
    { name: 'a job without a cache key', j: job('k'), holder: undefined },
    { name: 'a retry', j: job('a', 'k', 'ready', 1), holder: undefined },
  ])('takes from the cache: $name', ({ j, holder }) => {
    const { c } = claims({ k: 'w1' })
    expect(c.cached(j)).toBe(holder)
  })
})
