import { describe, expect, it } from 'vitest'
import { compileOrderOptions } from '../../src/index.ts'

describe('order options', () => {
  it('default to priority 50 and no override', () => {
    expect(compileOrderOptions(undefined)).toEqual({
      priority: 50,
      owner: undefined,
      override: undefined,
      failure: undefined,
      minSites: undefined,
      waitForSitesMs: 0,
    })
  })

  it('resolve overrides for all jobs and per job', () => {
    const got = compileOrderOptions(
      { priority: 90, override: { target: 'any', jobs: { build: 'k8s-eu' } } },
      new Set(['build', 'test']),
    )
    expect(got.priority).toBe(90)
    expect(got.override).toEqual({
      all: { kind: 'any' },
      jobs: { build: { kind: 'strict', target: 'k8s-eu' } },
    })
  })

  it.each([
    { input: { priority: 0 }, error: 'priority: Too small: expected number to be >=1' },
    { input: { priority: 101 }, error: 'priority: Too big: expected number to be <=100' },
    { input: { priority: 2.5 }, error: 'priority: expected a whole number' },
    {
      input: { override: { jobs: { deploy: 'w1' } } },
      error: "override.jobs.deploy: the order has no job named 'deploy'",
    },
    {
      input: { failure: { onExhausted: 'retry' } },
      error: 'failure.onExhausted: must be fail-order or continue',
    },
    { input: { colour: 'red' }, error: 'colour: unknown field' },
  ])('refuse $error', ({ input, error }) => {
    expect(() => compileOrderOptions(input, new Set(['build']))).toThrow(error)
  })
})
