import { describe, expect, it } from 'vitest'
import { backoffDelay, compileFailurePolicy, defaultFailurePolicy } from '../../src/index.ts'

describe('failure policies', () => {
  it('resolve field by field, the most specific layer first', () => {
    const policy = compileFailurePolicy(
      { attempts: 5 },
      { attempts: 2, onExhausted: 'continue' },
      { backoffMs: 10 },
    )
    expect(policy).toEqual({
      ...defaultFailurePolicy,
      attempts: 5,
      onExhausted: 'continue',
      backoffMs: 10,
    })
    expect(compileFailurePolicy()).toEqual(defaultFailurePolicy)
    expect(defaultFailurePolicy.onExhausted).toBe('fail-order')
  })

  it.each([
    { attempt: 2, random: 0.5, delay: 100 },
    { attempt: 3, random: 0.5, delay: 200 },
    { attempt: 4, random: 0.5, delay: 400 },
    { attempt: 9, random: 0.5, delay: 1000 },
    { attempt: 2, random: 0, delay: 90 },
    { attempt: 2, random: 0.999999, delay: 110 },
  ])(
    'back off exponentially with capped, jittered waits: attempt $attempt',
    ({ attempt, random, delay }) => {
      const policy = compileFailurePolicy({
        backoffMs: 100,
        backoffFactor: 2,
        maxBackoffMs: 1000,
        jitter: 0.1,
      })
      expect(backoffDelay(policy, attempt, random)).toBe(delay)
    },
  )
})
