import { describe, expect, it } from 'vitest'
import {
  NOT_DELIVERED,
  backoffDelay,
  compileFailurePolicy,
  decideAfterFailure,
} from '../../../src/core/failure-policy.ts'
import type { FailedAttempt } from '../../../src/core/failure-policy.ts'

const policy = compileFailurePolicy({
  attempts: 3,
  backoffMs: 100,
  backoffFactor: 2,
  maxBackoffMs: 1000,
  jitter: 0.5,
})

function failed(over: Partial<FailedAttempt> = {}): FailedAttempt {
  return {
    policy,
    counted: 1,
    orderRunning: true,
    target: 'w1',
    avoid: undefined,
    reason: 'exit-code',
    ...over,
  }
}

/** A random source that counts how often it was drawn. */
function counting(value: number): { random: () => number; draws: () => number } {
  let n = 0
  return {
    random: () => {
      n++
      return value
    },
    draws: () => n,
  }
}

describe('decideAfterFailure', () => {
  it.each([
    { name: 'the first failure of three attempts', counted: 1, random: 0.5, delay: 100 },
    { name: 'the second failure waits twice as long', counted: 2, random: 0.5, delay: 200 },
    { name: 'jitter spreads the wait down', counted: 1, random: 0, delay: 50 },
    { name: 'jitter spreads the wait up', counted: 2, random: 0.999999, delay: 300 },
  ])('retries after a backoff: $name', ({ counted, random, delay }) => {
    const r = counting(random)
    expect(decideAfterFailure(failed({ counted }), r.random)).toEqual({
      kind: 'retry',
      delay,
      avoid: undefined,
    })
    expect(delay).toBe(backoffDelay(policy, counted + 1, random))
    expect(r.draws()).toBe(1)
  })

  it.each([
    { name: 'the attempts are used up', over: { counted: 3 }, onExhausted: 'fail-order' },
    {
      name: 'the attempts are used up, and the policy continues',
      over: { counted: 3, policy: { ...policy, onExhausted: 'continue' as const } },
      onExhausted: 'continue',
    },
    { name: 'the order has ended', over: { orderRunning: false }, onExhausted: 'fail-order' },
    {
      name: 'the order has ended, even for an attempt never delivered',
      over: { orderRunning: false, reason: NOT_DELIVERED },
      onExhausted: 'fail-order',
    },
  ])('gives up when $name', ({ over, onExhausted }) => {
    const r = counting(0.5)
    expect(decideAfterFailure(failed(over), r.random)).toEqual({ kind: 'give-up', onExhausted })
    expect(r.draws()).toBe(0)
  })

  it('retries an attempt that was never delivered at once, drawing no random number', () => {
    const r = counting(0.5)
    expect(decideAfterFailure(failed({ reason: NOT_DELIVERED }), r.random)).toEqual({
      kind: 'retry',
      delay: 0,
      avoid: undefined,
    })
    expect(r.draws()).toBe(0)
  })

  it.each([
    { name: 'adds the failed target', otherTarget: true, avoid: ['w2'], out: ['w2', 'w1'] },
    { name: 'starts the list', otherTarget: true, avoid: undefined, out: ['w1'] },
    { name: 'keeps a target once', otherTarget: true, avoid: ['w1'], out: ['w1'] },
    { name: 'avoids nothing without otherTarget', otherTarget: false, avoid: ['w2'], out: ['w2'] },
  ])('a retry on another target $name', ({ otherTarget, avoid, out }) => {
    const before = avoid === undefined ? undefined : [...avoid]
    const decision = decideAfterFailure(
      failed({ policy: { ...policy, otherTarget }, avoid }),
      () => 0.5,
    )
    expect(decision).toEqual({ kind: 'retry', delay: 100, avoid: out })
    // The list the job had is not changed in place: the dispatch core holds it.
    expect(avoid).toEqual(before)
  })
})
