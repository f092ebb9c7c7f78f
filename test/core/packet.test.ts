import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { CycleError, ValidationError, compilePacket, findCycle } from '../../src/index.ts'
import type { PacketJobOptions } from '../../src/index.ts'

const job = (
  name: string,
  after?: string[],
  extra?: Partial<PacketJobOptions>,
): PacketJobOptions => ({
  name,
  op: { exec: ['make', name] },
  after,
  ...extra,
})

describe('compilePacket', () => {
  it('resolves names to positions, targets to policies and keeps resources', () => {
    const packet = compilePacket({
      name: 'build',
      resources: [
        { key: 'gpu', value: 'gpu-1', unique: true },
        { key: 'region', value: 'eu' },
      ],
      failure: { attempts: 3 },
      jobs: [
        job('fetch'),
        job('compile', ['fetch'], { uses: ['gpu', 'region'], target: 'k8s-eu' }),
        job('test', ['compile', 'fetch'], { target: 'any', failure: { onExhausted: 'continue' } }),
      ],
    })
    expect(packet.jobs.map((j) => j.after)).toEqual([[], [0], [0, 1]])
    expect(packet.jobs[1]!.policy).toEqual({ kind: 'strict', target: 'k8s-eu' })
    expect(packet.jobs[2]!.policy).toEqual({ kind: 'any' })
    expect(packet.jobs[0]!.policy).toEqual({ kind: 'any' })
    expect(packet.jobs[1]!.uses).toEqual(['gpu', 'region'])
    expect(packet.resources).toEqual([
      { key: 'gpu', value: 'gpu-1', unique: true },
      { key: 'region', value: 'eu', unique: false },
    ])
    expect(packet.failure).toEqual({ attempts: 3 })
    expect(packet.jobs[2]!.failure).toEqual({ onExhausted: 'continue' })
  })

  it.each<{ name: string; input: unknown; error: string; code?: string }>([
    {
      name: 'a duplicate job name',
      input: { name: 'p', jobs: [job('a'), job('b'), job('a')] },
      error: "jobs[2].name: job 'a' is already the name of jobs[0]",
    },
    {
      name: 'an unknown reference',
      input: { name: 'p', jobs: [job('a'), job('b', ['a', 'c'])] },
      error: "jobs[1].after[1]: no job is named 'c'",
    },
    {
      name: 'a reference listed twice',
      input: { name: 'p', jobs: [job('a'), job('b', ['a', 'a'])] },
      error: "jobs[1].after[1]: 'a' is listed twice",
    },
    {
      name: 'a cycle of two',
      input: { name: 'p', jobs: [job('build', ['test']), job('test', ['build'])] },
      error: 'jobs[0].after: cycle: build → test → build',
      code: 'CYCLE_IN_GRAPH',
    },
    {
      name: 'a job after itself',
      input: { name: 'p', jobs: [job('a'), job('loop', ['a', 'loop'])] },
      error: 'jobs[1].after: cycle: loop → loop',
      code: 'CYCLE_IN_GRAPH',
    },
    {
      name: 'a longer cycle behind a valid prefix',
      input: {
        name: 'p',
        jobs: [job('start'), job('x', ['start', 'z']), job('y', ['x']), job('z', ['y'])],
      },
      error: 'cycle: x → z → y → x',
      code: 'CYCLE_IN_GRAPH',
    },
    {
      name: 'an undeclared resource',
      input: { name: 'p', jobs: [job('a', [], { uses: ['gpu'] })] },
      error: "jobs[0].uses[0]: no resource 'gpu' is declared in resources",
    },
    {
      name: 'a resource declared twice',
      input: {
        name: 'p',
        resources: [
          { key: 'gpu', value: '1' },
          { key: 'gpu', value: '2' },
        ],
        jobs: [job('a')],
      },
      error: "resources[1].key: resource 'gpu' is declared twice",
    },
    {
      name: 'two resources that would share one environment variable',
      input: {
        name: 'p',
        resources: [
          { key: 'gpu.model', value: 'a100' },
          { key: 'GPU_model', value: 'h100' },
        ],
        jobs: [job('a')],
      },
      error:
        "resources[1].key: resource 'GPU_model' and 'gpu.model' would both be LOCKSTEP_RESOURCE_GPU_MODEL in a job's environment",
    },
    {
      name: 'a job without an operation',
      input: { name: 'p', jobs: [{ name: 'a' }] },
      error: 'jobs[0].op: is required',
    },
    {
      name: 'a bad failure policy',
      input: {
        name: 'p',
        jobs: [job('a', [], { failure: { attempts: 0, onExhausted: 'ignore' } as never })],
      },
      error: 'jobs[0].failure.attempts: Too small',
    },
    {
      name: 'no jobs',
      input: { name: 'p', jobs: [] },
      error: 'jobs: a packet needs at least one job',
    },
  ])('refuses $name', ({ input, error, code }) => {
    let caught: unknown
    try {
      compilePacket(input)
    } catch (e) {
      caught = e
    }
    expect(caught).toBeInstanceOf(ValidationError)
    expect((caught as Error).message).toContain(error)
    expect((caught as ValidationError).code).toBe(code ?? 'VALIDATION_FAILED')
    if (code === 'CYCLE_IN_GRAPH') expect(caught).toBeInstanceOf(CycleError)
  })

  it('reports every problem at once', () => {
    expect(() => compilePacket({ name: 'p', jobs: [job('a', ['x']), job('a', ['y'])] })).toThrow(
      "jobs[1].name: job 'a' is already the name of jobs[0]\njobs[0].after[0]: no job is named 'x'\njobs[1].after[0]: no job is named 'y'",
    )
  })

  it.each([
    {
      limit: { maxJobs: 2, maxLocks: 100, maxResources: 10 },
      error: 'jobs: has 3 jobs; the limit is 2',
    },
    {
      limit: { maxJobs: 10, maxLocks: 2, maxResources: 10 },
      error: "jobs: has 3 'after' references; the limit is 2",
    },
  ])('enforces configured limits: $error', ({ limit, error }) => {
    const input = { name: 'p', jobs: [job('a'), job('b', ['a']), job('c', ['a', 'b'])] }
    expect(() => compilePacket(input, limit)).toThrow(error)
    expect(() => compilePacket(input)).not.toThrow()
  })

  it('checks a deep chain without overflowing the stack', () => {
    const jobs = Array.from({ length: 50_000 }, (_, i) =>
      job(`j${i}`, i === 0 ? [] : [`j${i - 1}`]),
    )
    expect(compilePacket({ name: 'chain', jobs }).jobs).toHaveLength(50_000)
    jobs[0] = job('j0', ['j49999'])
    expect(() => compilePacket({ name: 'chain', jobs })).toThrow(CycleError)
  })
})

describe('findCycle', () => {
  it('finds a cycle exactly when a topological order does not exist', () => {
    const graph = fc.integer({ min: 1, max: 12 }).chain((n) =>
      fc.array(fc.uniqueArray(fc.integer({ min: 0, max: n - 1 }), { maxLength: 4 }), {
        minLength: n,
        maxLength: n,
      }),
    )
    fc.assert(
      fc.property(graph, (after) => {
        const jobs = after.map((deps) => ({ after: deps }))
        // Kahn's algorithm as the oracle.
        const indegree = jobs.map((j) => j.after.length)
        const dependents = jobs.map(() => [] as number[])
        jobs.forEach((j, i) => j.after.forEach((d) => dependents[d]!.push(i)))
        const queue = indegree.flatMap((d, i) => (d === 0 ? [i] : []))
        let done = 0
        while (queue.length > 0) {
          const i = queue.pop()!
          done++
          for (const next of dependents[i]!) if (--indegree[next]! === 0) queue.push(next)
        }
        const cycle = findCycle(jobs)
        expect(cycle !== undefined).toBe(done < jobs.length)
        if (cycle !== undefined) {
          expect(cycle[0]).toBe(cycle[cycle.length - 1])
          for (let k = 0; k + 1 < cycle.length; k++)
            expect(jobs[cycle[k]!]!.after).toContain(cycle[k + 1])
        }
      }),
      { numRuns: 1000 },
    )
  })
})
