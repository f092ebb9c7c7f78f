import { describe, expect, it } from 'vitest'
import { WaitingPicks } from '../../../src/core/dispatch/waiting-picks.ts'
import type { PickRequest } from '../../../src/core/dispatch/waiting-picks.ts'

const target = () => ({ picks: [] as PickRequest<string>[] })

describe('WaitingPicks', () => {
  it('answers a target’s picks oldest first and tracks idle targets in the order they began to wait', async () => {
    const picks = new WaitingPicks<ReturnType<typeof target>, string>()
    const [t1, t2] = [target(), target()]
    const first = picks.wait(t2, undefined)
    const second = picks.wait(t2, undefined)
    void picks.wait(t1, undefined)
    expect([...picks.idle]).toEqual([t2, t1])
    picks.answer(t2, 'a')
    picks.answer(t2, 'b')
    expect(await first).toBe('a')
    expect(await second).toBe('b')
    expect([...picks.idle]).toEqual([t1])
    picks.cancelAll()
    expect(picks.idle.size).toBe(0)
  })

  it('resolves an aborted pick with null, forgets it, and leaves no listener on a signal it answered', async () => {
    const picks = new WaitingPicks<ReturnType<typeof target>, string>()
    const t = target()
    const aborted = new AbortController()
    const pending = picks.wait(t, aborted.signal)
    aborted.abort()
    expect(await pending).toBeNull()
    expect(picks.has(t)).toBe(false)
    expect(picks.idle.size).toBe(0)

    const answered = new AbortController()
    let removed = 0
    const remove = answered.signal.removeEventListener.bind(answered.signal)
    answered.signal.removeEventListener = (...args: Parameters<typeof remove>) => {
      removed++
      remove(...args)
    }
    const later = picks.wait(t, answered.signal)
    picks.cancel(t)
    expect(await later).toBeNull()
    expect(removed).toBe(1)
  })
})
