import { describe, expect, it } from 'vitest'
import { IdGenerator, ValidationError, compilePacket, idTime } from '../../../src/index.ts'
import { compileOrderOptions } from '../../../src/core/order.ts'
import {
  artifactSubmission,
  compileArtifactOrder,
  packetSubmission,
} from '../../../src/core/engine/submission.ts'

const NOW = 1_700_000_000_000
const op = { builtin: 'noop' }

/** Ids that sort in the order they were drawn. */
const ids = () => new IdGenerator((bytes) => bytes.fill(7))

const packet = compilePacket({
  name: 'build',
  resources: [
    { key: 'gpu', value: 'gpu-1', unique: true },
    { key: 'region', value: 'eu' },
  ],
  failure: { attempts: 2, backoffMs: 10 },
  jobs: [
    { name: 'fetch', op, cache: 'src-v1' },
    { name: 'compile', op, after: ['fetch'], uses: ['gpu', 'region'], target: 'w1' },
    { name: 'test', op, after: ['compile', 'fetch'], failure: { attempts: 5 }, timeoutMs: 50 },
  ],
})

describe('packetSubmission', () => {
  it('makes an order of waiting jobs, joined by locks in the packet order', () => {
    const resolved = compileOrderOptions({ priority: 80 })
    const s = packetSubmission('p-1', packet, resolved, 'alice', ids(), NOW)
    expect(s.order).toMatchObject({
      source: { kind: 'packet', packetId: 'p-1' },
      priority: 80,
      owner: 'alice',
      creator: 'alice',
      state: 'running',
      createdAt: NOW,
    })
    expect(s.iterations).toBe(0)
    expect(s.jobs.map((j) => [j.name, j.index, j.state, j.attempt])).toEqual([
      ['fetch', 0, 'waiting', 0],
      ['compile', 1, 'waiting', 0],
      ['test', 2, 'waiting', 0],
    ])
    for (const j of s.jobs) expect(j.orderId).toBe(s.order.id)
    const [fetch, compile, test] = s.jobs.map((j) => j.id)
    expect(s.locks).toEqual([
      { jobId: fetch, nextId: compile },
      { jobId: fetch, nextId: test },
      { jobId: compile, nextId: test },
    ])
    // The order's id is drawn before its jobs'.
    expect([s.order.id, ...s.jobs.map((j) => j.id)]).toEqual(
      [s.order.id, ...s.jobs.map((j) => j.id)].sort(),
    )
    expect(idTime(s.order.id)).toBe(NOW)
  })

  it('gives each job its resources, cache key, timeout and layered failure policy', () => {
    const resolved = compileOrderOptions({ failure: { backoffMs: 20, onExhausted: 'continue' } })
    const [fetch, compile, test] = packetSubmission('p', packet, resolved, 'a', ids(), NOW).jobs
    expect(compile!.uses).toEqual([
      { key: 'gpu', value: 'gpu-1', unique: true },
      { key: 'region', value: 'eu', unique: false },
    ])
    expect(fetch!.uses).toEqual([])
    expect(fetch!.cacheKey).toBe('src-v1')
    expect('cacheKey' in compile!).toBe(false)
    expect(test!.timeoutMs).toBe(50)
    // Job over order over packet, field by field.
    expect(test!.failure).toMatchObject({ attempts: 5, backoffMs: 20, onExhausted: 'continue' })
    expect(fetch!.failure).toMatchObject({ attempts: 2, backoffMs: 20, onExhausted: 'continue' })
  })

  it.each([
    {
      name: 'no override keeps the packet policies',
      options: {},
      policies: [{ kind: 'any' }, { kind: 'strict', target: 'w1' }, { kind: 'any' }],
    },
    {
      name: 'an override for all jobs',
      options: { override: { target: 'w2' } },
      policies: [
        { kind: 'strict', target: 'w2' },
        { kind: 'strict', target: 'w2' },
        { kind: 'strict', target: 'w2' },
      ],
    },
    {
      name: 'a job named in the override before the one for all',
      options: { override: { target: 'w2', jobs: { compile: 'any' } } },
      policies: [
        { kind: 'strict', target: 'w2' },
        { kind: 'any' },
        { kind: 'strict', target: 'w2' },
      ],
    },
  ])('target policies: $name', ({ options, policies }) => {
    const resolved = compileOrderOptions(options, new Set(['fetch', 'compile', 'test']))
    const s = packetSubmission('p', packet, resolved, 'a', ids(), NOW)
    expect(s.jobs.map((j) => j.policy)).toEqual(policies)
  })
})

describe('artifact submission', () => {
  const artifact = {
    project: 'census',
    steps: [
      { kind: 'initialize', op, distribution: 'distribute' },
      { kind: 'parallel', op, distribution: 'collect' },
      { kind: 'finalize', op },
    ],
  }

  it('binds over the context: the example of DESIGN.md', () => {
    const { artifact: checked, resolved } = compileArtifactOrder(artifact, { owner: 'bob' })
    const context = { initiator: 'init', workers: ['w1', 'w2'] }
    const s = artifactSubmission(checked, context, resolved, 'alice', ids(), NOW)
    expect(s.order).toMatchObject({ source: { kind: 'artifact' }, owner: 'bob', creator: 'alice' })
    expect(s.jobs.map((j) => j.policy)).toEqual(
      ['init', 'w1', 'w2', 'init'].map((target) => ({ kind: 'strict', target })),
    )
    const id = s.jobs.map((j) => j.id)
    expect(s.locks).toEqual([
      { jobId: id[0], nextId: id[1] },
      { jobId: id[0], nextId: id[2] },
      { jobId: id[1], nextId: id[3] },
      { jobId: id[2], nextId: id[3] },
    ])
    expect(s.jobs.map((j) => [j.step, j.iteration, j.uses, j.timeoutMs])).toEqual([
      [0, 0, [], undefined],
      [1, 0, [], undefined],
      [1, 0, [], undefined],
      [2, 0, [], undefined],
    ])
    expect(s.iterations).toBe(1)
    // The jobs' ids are drawn first, then the artifact's, then the order's.
    const source = s.order.source as { artifactId: string }
    expect([...id, source.artifactId, s.order.id]).toEqual(
      [...id, source.artifactId, s.order.id].sort(),
    )
  })

  it('counts the iterations of iterate steps', () => {
    const looped = {
      project: 'p',
      steps: [{ kind: 'iterate', iterations: 3, steps: [{ kind: 'parallel', op }] }],
    }
    const { artifact: checked, resolved } = compileArtifactOrder(looped, undefined)
    const s = artifactSubmission(
      checked,
      { initiator: 'i', workers: ['w'] },
      resolved,
      'a',
      ids(),
      NOW,
    )
    expect(s.jobs.map((j) => j.iteration)).toEqual([0, 1, 2])
    expect(s.iterations).toBe(3)
  })

  it('refuses an override: the jobs are bound to the workers holding the data', () => {
    let error: unknown
    try {
      compileArtifactOrder(artifact, { override: { target: 'w1' } })
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(ValidationError)
    expect((error as ValidationError).issues.map((i) => i.path)).toEqual(['override'])
  })
})
