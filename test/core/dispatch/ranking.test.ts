import { describe, expect, it } from 'vitest'
import {
  Best,
  RANK_FIRST,
  RANK_GLOBAL,
  RANK_SECOND,
  beats,
  heapKey,
} from '../../../src/core/dispatch/ranking.ts'

const job = (priority: number, seq: number) => ({ priority, seq })

describe('ranking', () => {
  it.each([
    ['higher priority first, whatever the queue', job(60, 9), RANK_GLOBAL, job(50, 1), RANK_FIRST],
    ['higher priority first, whatever the age', job(60, 9), RANK_FIRST, job(50, 1), RANK_FIRST],
    [
      'at equal priority, first local before second',
      job(50, 9),
      RANK_FIRST,
      job(50, 1),
      RANK_SECOND,
    ],
    [
      'at equal priority, second local before global',
      job(50, 9),
      RANK_SECOND,
      job(50, 1),
      RANK_GLOBAL,
    ],
    ['at equal priority and queue, older first', job(50, 1), RANK_GLOBAL, job(50, 2), RANK_GLOBAL],
  ])('%s', (_, a, ra, b, rb) => {
    expect(beats(a, ra, b, rb)).toBe(true)
    expect(beats(b, rb, a, ra)).toBe(false)
  })

  it('takes the same job from the better of two queues', () => {
    const j = job(50, 1)
    expect(beats(j, RANK_FIRST, j, RANK_GLOBAL)).toBe(true)
    expect(beats(j, RANK_GLOBAL, j, RANK_FIRST)).toBe(false)
  })

  it('orders a heap key like beats within one queue: priority, then age', () => {
    const jobs = [job(50, 3), job(100, 7), job(1, 0), job(50, 2), job(100, 1)]
    const byKey = [...jobs].sort((a, b) => heapKey(a.priority, a.seq) - heapKey(b.priority, b.seq))
    const byBeats = [...jobs].sort((a, b) => (beats(a, RANK_GLOBAL, b, RANK_GLOBAL) ? -1 : 1))
    expect(byKey).toEqual(byBeats)
    expect(byKey[0]).toEqual(job(100, 1))
  })

  it('keeps the best of the tops offered, with its queue and target, until reset', () => {
    const best = new Best<{ priority: number; seq: number }, string, string>()
    best.offer(job(50, 1), RANK_GLOBAL, 'global', undefined)
    best.offer(undefined, RANK_FIRST, 'w1.first', 'w1')
    best.offer(job(50, 5), RANK_SECOND, 'w1.second', 'w1')
    best.offer(job(40, 0), RANK_FIRST, 'w2.first', 'w2')
    expect([best.job, best.queue, best.target]).toEqual([job(50, 5), 'w1.second', 'w1'])
    // A tie keeps the first offered: the order of offers is the order of preference.
    best.offer(job(50, 5), RANK_SECOND, 'w3.second', 'w3')
    expect(best.target).toBe('w1')
    best.reset()
    expect([best.job, best.queue, best.target]).toEqual([undefined, undefined, undefined])
  })
})
