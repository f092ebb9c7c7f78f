import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { IdGenerator, ValidationError, bind, toJobGraph } from '../../src/index.ts'
import type { Artifact, BoundJob, Distribution, StepSpec } from '../../src/index.ts'

const op = (name: string) => ({ builtin: name })
const init = (distribution?: Distribution): StepSpec => ({
  kind: 'initialize',
  op: op('init'),
  distribution,
})
const par = (distribution?: Distribution): StepSpec => ({
  kind: 'parallel',
  op: op('work'),
  distribution,
})
const fin = (distribution?: Distribution): StepSpec => ({
  kind: 'finalize',
  op: op('fin'),
  distribution,
})
const rr = (distribution?: Distribution): StepSpec => ({
  kind: 'round-robin',
  op: op('pass'),
  distribution,
})
const seq = (distribution?: Distribution): StepSpec => ({
  kind: 'sequential',
  op: op('add'),
  init: op('mask'),
  final: op('unmask'),
  distribution,
})
const iterate = (iterations: number, steps: StepSpec[], distribution?: Distribution): StepSpec => ({
  kind: 'iterate',
  iterations,
  steps,
  distribution,
})

const workers = (n: number) => Array.from({ length: n }, (_, i) => `w${i + 1}`)
const run = (steps: StepSpec[], n = 3) =>
  bind({ project: 'p', steps }, { initiator: 'I', workers: workers(n) })
const edges = (jobs: BoundJob[]) => jobs.flatMap((j) => j.locks.map((next) => `${j.id}→${next}`))
const placement = (jobs: BoundJob[]) => jobs.map((j) => j.worker).join(' ')

describe('bind', () => {
  it.each<{ name: string; steps: StepSpec[]; n?: number; placed: string; locks: string[] }>([
    {
      name: 'DESIGN example: 2 workers, initialize(distribute), parallel(collect), finalize',
      steps: [init('distribute'), par('collect'), fin()],
      n: 2,
      placed: 'I w1 w2 I',
      locks: ['0→1', '0→2', '1→3', '2→3'],
    },
    {
      name: 'scatter-gather over 3 workers',
      steps: [init('distribute'), par('collect'), fin()],
      placed: 'I w1 w2 w3 I',
      locks: ['0→1', '0→2', '0→3', '1→4', '2→4', '3→4'],
    },
    {
      name: 'inferred distribute and collect',
      steps: [init(), par(), fin()],
      placed: 'I w1 w2 w3 I',
      locks: ['0→1', '0→2', '0→3', '1→4', '2→4', '3→4'],
    },
    {
      name: 'inferred 1→1 is direct',
      steps: [init(), fin()],
      placed: 'I I',
      locks: ['0→1'],
    },
    {
      name: 'sequential: initiator → w1 → w2 → w3 → initiator',
      steps: [seq()],
      placed: 'I w1 w2 w3 I',
      locks: ['0→1', '1→2', '2→3', '3→4'],
    },
    {
      name: 'round-robin: round r on worker i hands to worker i+1 of round r+1',
      steps: [rr()],
      placed: 'w1 w2 w3 w1 w2 w3 w1 w2 w3',
      locks: ['0→4', '1→5', '2→3', '3→7', '4→8', '5→6'],
    },
    {
      name: 'round-robin step with one worker is one job',
      steps: [rr()],
      n: 1,
      placed: 'w1',
      locks: [],
    },
    {
      name: 'round-robin distribution between parallel steps',
      steps: [par('round-robin'), par()],
      placed: 'w1 w2 w3 w1 w2 w3',
      locks: ['0→4', '1→5', '2→3'],
    },
    {
      name: 'arrange: all to all',
      steps: [par('arrange'), par()],
      n: 2,
      placed: 'w1 w2 w1 w2',
      locks: ['0→2', '0→3', '1→2', '1→3'],
    },
    {
      name: 'inferred N→M is arrange',
      steps: [par(), par()],
      n: 2,
      placed: 'w1 w2 w1 w2',
      locks: ['0→2', '0→3', '1→2', '1→3'],
    },
    {
      name: 'none: no locks between steps',
      steps: [par('none'), fin()],
      n: 2,
      placed: 'w1 w2 I',
      locks: [],
    },
    {
      name: 'sequential binds through its initiator jobs',
      steps: [seq(), par(), fin()],
      n: 2,
      placed: 'I w1 w2 I w1 w2 I',
      locks: ['0→1', '1→2', '2→3', '3→4', '3→5', '4→6', '5→6'],
    },
    {
      name: 'round-robin binds through its first and last rounds',
      steps: [init(), rr(), fin()],
      n: 2,
      placed: 'I w1 w2 w1 w2 I',
      locks: ['0→1', '0→2', '1→4', '2→3', '3→5', '4→5'],
    },
    {
      name: 'iterate: the last job of iteration t locks the first jobs of t+1',
      steps: [iterate(2, [par('collect'), fin('distribute')]), fin()],
      n: 2,
      placed: 'w1 w2 I w1 w2 I I',
      locks: ['0→2', '1→2', '2→3', '2→4', '3→5', '4→5', '5→6'],
    },
    {
      name: 'iterate after an initialize',
      steps: [init(), iterate(2, [par(), fin()])],
      n: 2,
      placed: 'I w1 w2 I w1 w2 I',
      locks: ['0→1', '0→2', '1→3', '2→3', '3→4', '3→5', '4→6', '5→6'],
    },
    {
      name: 'nested iterate',
      steps: [iterate(2, [iterate(2, [fin()])])],
      placed: 'I I I I',
      locks: ['0→1', '1→2', '2→3'],
    },
  ])('$name', ({ steps, n, placed, locks }) => {
    const jobs = run(steps, n)
    expect(placement(jobs)).toBe(placed)
    expect(edges(jobs)).toEqual(locks)
    expect(jobs.map((j) => j.id)).toEqual(jobs.map((_, i) => i))
  })

  it('gives the sequential step its init, op and final operations, noop by default', () => {
    expect(run([seq()], 2).map((j) => (j.op as { builtin: string }).builtin)).toEqual([
      'mask',
      'add',
      'add',
      'unmask',
    ])
    const plain = run([{ kind: 'sequential', op: op('add') }], 1)
    expect(plain.map((j) => (j.op as { builtin: string }).builtin)).toEqual(['noop', 'add', 'noop'])
  })

  it('numbers iterations of the outermost iterate and records step paths', () => {
    const jobs = run([init(), iterate(3, [par(), fin()]), fin()], 2)
    expect(jobs.map((j) => j.iteration)).toEqual([0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 0])
    expect(jobs.map((j) => j.step)).toEqual([0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2])
    expect(jobs[1]!.stepPath).toBe('steps[1].steps[0]')
    expect(jobs[3]!.stepPath).toBe('steps[1].steps[1]')
    expect(jobs[10]!.stepPath).toBe('steps[2]')
  })

  it.each<{ name: string; steps: StepSpec[]; n?: number; error: string }>([
    {
      name: 'collect into many',
      steps: [par('collect'), par()],
      error: "steps[0].distribution: 'collect' needs one job after it, found 3",
    },
    {
      name: 'distribute from many',
      steps: [par('distribute'), fin()],
      error: "steps[0].distribution: 'distribute' needs one job before it, found 3",
    },
    {
      name: 'round-robin between unequal counts',
      steps: [par('round-robin'), fin()],
      error:
        "steps[0].distribution: 'round-robin' needs as many jobs after it as before it, found 3 before and 1 after",
    },
    {
      name: 'a distribution on the last step',
      steps: [init(), fin('distribute')],
      error: "steps[1].distribution: 'distribute' has no step after it to bind to",
    },
    {
      name: 'a bad distribution between iterations names the inner step',
      steps: [iterate(2, [par(), fin('collect')])],
      error: "steps[0].steps[1].distribution: 'collect' needs one job after it, found 3",
    },
    {
      name: "a bad iterate's own distribution names the iterate",
      steps: [iterate(2, [fin()], 'collect'), par()],
      error: "steps[0].distribution: 'collect' needs one job after it, found 3",
    },
    {
      name: 'a worker step with no workers',
      steps: [init(), par(), fin()],
      n: 0,
      error: 'steps[1]: a parallel step needs at least one worker; the context has none',
    },
  ])('refuses $name', ({ steps, n, error }) => {
    expect(() => run(steps, n)).toThrow(ValidationError)
    expect(() => run(steps, n)).toThrow(error)
  })

  it.each([
    {
      name: 'more jobs than the limit',
      steps: [iterate(1000, [rr()])],
      n: 100,
      error: 'steps: binds to 10000000 jobs over 100 workers; the limit is 100000 jobs per order',
    },
    {
      name: 'an iterate of 100,000 rounds',
      steps: [init(), iterate(100_000, [par(), fin()])],
      n: 3,
      error: 'steps: binds to 400001 jobs over 3 workers; the limit is 100000 jobs per order',
    },
    {
      name: 'more locks than the limit',
      steps: [par('arrange'), par()],
      n: 1001,
      error:
        'steps: binds to 1002001 locks over 1001 workers; the limit is 1000000 locks per order',
    },
  ])('refuses $name before binding a job, with its own code', ({ steps, n, error }) => {
    const started = performance.now()
    let thrown: unknown
    try {
      run(steps, n)
    } catch (e) {
      thrown = e
    }
    expect(thrown).toBeInstanceOf(ValidationError)
    expect(thrown).toMatchObject({ code: 'LIMIT_EXCEEDED', message: error })
    // Measured from the steps alone: nothing of the size it would bind to is built.
    expect(performance.now() - started).toBeLessThan(200)
  })

  it('refuses a context that lists a worker twice', () => {
    expect(() =>
      bind({ project: 'p', steps: [par()] }, { initiator: 'I', workers: ['a', 'b', 'a'] }),
    ).toThrow("context.workers[2]: worker 'a' is listed twice")
  })

  it.each<{ name: string; artifact: unknown; error: string }>([
    { name: 'a missing project', artifact: { steps: [init()] }, error: 'project: is required' },
    {
      name: 'no steps',
      artifact: { project: 'p', steps: [] },
      error: 'steps: an artifact needs at least one step',
    },
    {
      name: 'an unknown step kind',
      artifact: { project: 'p', steps: [init(), { kind: 'scatter', op: op('x') }] },
      error:
        'steps[1].kind: must be one of initialize, parallel, sequential, finalize, round-robin, iterate',
    },
    {
      name: 'a step without an operation',
      artifact: { project: 'p', steps: [{ kind: 'parallel' }] },
      error: 'steps[0].op: is required',
    },
    {
      name: 'an operation with two kinds',
      artifact: {
        project: 'p',
        steps: [{ kind: 'parallel', op: { builtin: 'count', exec: ['wc'] } }],
      },
      error: 'steps[0].op: has builtin and exec: give exactly one of builtin, exec or image',
    },
    {
      name: 'args on an exec operation',
      artifact: { project: 'p', steps: [{ kind: 'parallel', op: { exec: ['wc'], args: {} } }] },
      error: 'steps[0].op.args: does not go with exec',
    },
    {
      name: 'an unknown distribution',
      artifact: {
        project: 'p',
        steps: [{ kind: 'parallel', op: op('x'), distribution: 'scatter' }, fin()],
      },
      error:
        'steps[0].distribution: must be one of distribute, collect, arrange, round-robin, none',
    },
    {
      name: 'zero iterations',
      artifact: { project: 'p', steps: [{ kind: 'iterate', iterations: 0, steps: [fin()] }] },
      error: 'steps[0].iterations: Too small: expected number to be >=1',
    },
    {
      name: 'an unknown field',
      artifact: { project: 'p', steps: [{ kind: 'finalize', op: op('x'), worker: 'w1' }] },
      error: 'steps[0].worker: unknown field',
    },
    {
      name: 'a project name with a slash',
      artifact: { project: 'a/b', steps: [fin()] },
      error: 'project: must be 1–128 letters, digits',
    },
  ])('names the path of $name', ({ artifact, error }) => {
    expect(() => bind(artifact as Artifact, { initiator: 'I', workers: workers(3) })).toThrow(error)
  })
})

describe('a step’s timeoutMs', () => {
  it('is carried into every job the step binds, the ends of a sequential step too', () => {
    const steps: StepSpec[] = [
      { kind: 'initialize', op: op('init') },
      { kind: 'parallel', op: op('work'), timeoutMs: 60_000 },
      iterate(2, [{ kind: 'sequential', op: op('add'), timeoutMs: 5_000 }]),
      fin(),
    ]
    const jobs = run(steps, 2)
    expect(jobs.map((j) => [j.stepPath, j.timeoutMs ?? null])).toEqual([
      ['steps[0]', null],
      ['steps[1]', 60_000],
      ['steps[1]', 60_000],
      ...Array.from({ length: 2 }, () =>
        Array.from({ length: 4 }, () => ['steps[2].steps[0]', 5_000]),
      ).flat(),
      ['steps[3]', null],
    ])
    const graph = toJobGraph(jobs, new IdGenerator(), 0)
    expect(graph.jobs.map((j) => j.timeoutMs ?? null)).toEqual(jobs.map((j) => j.timeoutMs ?? null))
  })

  it.each<{ timeoutMs: unknown; message: string }>([
    { timeoutMs: 0, message: 'Too small: expected number to be >=1' },
    { timeoutMs: -5, message: 'Too small: expected number to be >=1' },
    { timeoutMs: 1.5, message: 'expected a whole number' },
    { timeoutMs: 7 * 86_400_000 + 1, message: 'Too big: expected number to be <=604800000' },
    { timeoutMs: '60s', message: 'expected number, received string' },
  ])('refuses $timeoutMs, naming its path', ({ timeoutMs, message }) => {
    const artifact = {
      project: 'p',
      steps: [init(), iterate(1, [{ kind: 'parallel', op: op('x'), timeoutMs } as StepSpec])],
    }
    expect(() => bind(artifact, { initiator: 'I', workers: workers(2) })).toThrow(
      `steps[1].steps[0].timeoutMs: ${message}`,
    )
  })

  it('is a field of the steps that run, not of an iterate', () => {
    const artifact = {
      project: 'p',
      steps: [{ ...iterate(1, [fin()]), timeoutMs: 10 } as StepSpec],
    }
    expect(() => bind(artifact, { initiator: 'I', workers: workers(2) })).toThrow(
      'steps[0].timeoutMs: unknown field',
    )
  })
})

describe('toJobGraph', () => {
  it('gives every job a UUIDv7 and turns locks into rows', () => {
    const bound = run([init('distribute'), par('collect'), fin()])
    const graph = toJobGraph(bound, new IdGenerator(), 1_700_000_000_000)
    expect(graph.jobs).toHaveLength(5)
    expect(new Set(graph.jobs.map((j) => j.id)).size).toBe(5)
    expect(graph.jobs.every((j) => /^[0-9a-f]{8}-[0-9a-f]{4}-7/.test(j.id))).toBe(true)
    const name = new Map(graph.jobs.map((j) => [j.id, j.name]))
    expect(graph.locks.map((l) => `${name.get(l.jobId)}→${name.get(l.nextId)}`)).toEqual([
      '0→1',
      '0→2',
      '0→3',
      '1→4',
      '2→4',
      '3→4',
    ])
    expect(graph.jobs[2]!.policy).toEqual({ kind: 'strict', target: 'w2' })
  })
})

// Random artifacts: any step kind, any distribution that fits (checked by the oracle below).
const leaf: fc.Arbitrary<StepSpec> = fc
  .record({
    kind: fc.constantFrom('initialize', 'parallel', 'finalize', 'round-robin', 'sequential'),
    // Half the steps infer their distribution, so that most random artifacts bind.
    distribution: fc.option(
      fc.constantFrom<Distribution>('distribute', 'collect', 'arrange', 'round-robin', 'none'),
      {
        nil: undefined,
        freq: 2,
      },
    ),
  })
  .map(({ kind, distribution }) => ({ kind, op: op(kind), distribution }))
const { step: stepArb } = fc.letrec<{ step: StepSpec }>((tie) => ({
  step: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    leaf,
    fc
      .record({
        iterations: fc.integer({ min: 1, max: 3 }),
        steps: fc.array(tie('step'), { minLength: 1, maxLength: 3 }),
        distribution: fc.option(
          fc.constantFrom<Distribution>('distribute', 'collect', 'arrange', 'none'),
          {
            nil: undefined,
            freq: 2,
          },
        ),
      })
      .map((s): StepSpec => ({ kind: 'iterate', ...s })),
  ),
}))

/** The shapes alone: first/last counts, internal locks and link locks of a step list. */
function shapeOracle(steps: StepSpec[], n: number): { jobs: number; locks: number } | 'invalid' {
  type Seg = {
    first: number
    last: number
    dist: Distribution | undefined
    jobs: number
    internal: number
  }
  const segs: Seg[] = []
  const walk = (list: StepSpec[], tail?: Distribution | 'unset'): void => {
    list.forEach((s, i) => {
      const out =
        i === list.length - 1 && tail !== undefined
          ? tail === 'unset'
            ? undefined
            : tail
          : s.distribution
      if (s.kind === 'iterate') {
        for (let t = 0; t < s.iterations; t++)
          walk(s.steps, t === s.iterations - 1 ? (out ?? 'unset') : undefined)
        return
      }
      const shape = {
        initialize: [1, 1, 1, 0],
        finalize: [1, 1, 1, 0],
        parallel: [n, n, n, 0],
        sequential: [1, 1, n + 2, n + 1],
        'round-robin': [n, n, n * n, n * (n - 1)],
      }[s.kind]
      segs.push({
        first: shape[0]!,
        last: shape[1]!,
        jobs: shape[2]!,
        internal: shape[3]!,
        dist: out,
      })
    })
  }
  walk(steps)
  if (segs[segs.length - 1]!.dist !== undefined) return 'invalid'
  let locks = 0
  let jobs = 0
  for (const s of segs) {
    jobs += s.jobs
    locks += s.internal
  }
  for (let i = 0; i + 1 < segs.length; i++) {
    const a = segs[i]!.last
    const b = segs[i + 1]!.first
    const d = segs[i]!.dist ?? (a === 1 ? 'distribute' : b === 1 ? 'collect' : 'arrange')
    if (d === 'distribute') {
      if (a !== 1) return 'invalid'
      locks += b
    } else if (d === 'collect') {
      if (b !== 1) return 'invalid'
      locks += a
    } else if (d === 'arrange') locks += a * b
    else if (d === 'round-robin') {
      if (a !== b) return 'invalid'
      locks += a
    }
  }
  return { jobs, locks }
}

// Valid artifacts by construction: first the shapes (kinds, iterations, nesting) and the number
// of workers, then for every distribution one that binds the jobs on its two sides. No case is
// thrown away.
type Shape =
  | { kind: Exclude<StepSpec['kind'], 'iterate'> }
  | { kind: 'iterate'; iterations: number; steps: Shape[] }

const { shape: shapeArb } = fc.letrec<{ shape: Shape }>((tie) => ({
  shape: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc
      .constantFrom('initialize', 'parallel', 'finalize', 'round-robin', 'sequential')
      .map((kind): Shape => ({ kind })),
    fc
      .record({
        iterations: fc.integer({ min: 1, max: 3 }),
        steps: fc.array(tie('shape'), { minLength: 1, maxLength: 3 }),
      })
      .map((s): Shape => ({ kind: 'iterate', ...s })),
  ),
}))

/** How many first and last jobs a step has over n workers. */
function ends(s: Shape, n: number): { first: number; last: number } {
  if (s.kind === 'iterate') {
    return { first: ends(s.steps[0]!, n).first, last: ends(s.steps.at(-1)!, n).last }
  }
  const width = s.kind === 'parallel' || s.kind === 'round-robin' ? n : 1
  return { first: width, last: width }
}

/**
 * What a step's distribution binds its last jobs to: the next step's first jobs (a count), the
 * end of the artifact (so none may be given), or nothing at all: the last step inside an
 * iterate of one iteration, whose distribution the iterate's own replaces.
 */
type Link = number | 'end' | 'unused'

const allDistributions: Distribution[] = ['distribute', 'collect', 'arrange', 'round-robin', 'none']

function distributionFor(
  link: Link,
  last: number,
  none: boolean,
): fc.Arbitrary<Distribution | undefined> {
  if (link === 'end') return fc.constant(undefined)
  const fits =
    link === 'unused'
      ? allDistributions
      : allDistributions.filter(
          (d) =>
            (d !== 'distribute' || last === 1) &&
            (d !== 'collect' || link === 1) &&
            (d !== 'round-robin' || last === link),
        )
  // Inferred (undefined) always binds; half the steps infer theirs.
  const given = fits.filter((d) => none || d !== 'none')
  return fc.oneof(fc.constant(undefined), fc.constantFrom(...given))
}

function dress(shapes: Shape[], n: number, after: Link, none: boolean): fc.Arbitrary<StepSpec[]> {
  return fc.tuple(
    ...shapes.map((s, i) => {
      const link = i + 1 < shapes.length ? ends(shapes[i + 1]!, n).first : after
      const distribution = distributionFor(link, ends(s, n).last, none)
      if (s.kind !== 'iterate') {
        return distribution.map((d): StepSpec => ({
          kind: s.kind,
          op: op(s.kind),
          distribution: d,
        }))
      }
      // The last inner step binds one iteration to the next; the iterate's own distribution
      // binds its last iteration to what follows it.
      const between = s.iterations > 1 ? ends(s.steps[0]!, n).first : 'unused'
      return fc
        .tuple(dress(s.steps, n, between, none), distribution)
        .map(([steps, d]): StepSpec => ({
          kind: 'iterate',
          iterations: s.iterations,
          steps,
          distribution: d,
        }))
    }),
  )
}

/** Artifacts that bind over n workers; `none: false` leaves out the `none` distribution. */
const validInput = ({ none }: { none: boolean }) =>
  fc
    .record({
      shapes: fc.array(shapeArb, { minLength: 1, maxLength: 5 }),
      n: fc.integer({ min: 1, max: 4 }),
    })
    .chain(({ shapes, n }) => dress(shapes, n, 'end', none).map((steps) => ({ steps, n })))

describe('bind properties', () => {
  const anyInput = fc.record({
    steps: fc.array(stepArb, { minLength: 1, maxLength: 5 }),
    n: fc.integer({ min: 1, max: 4 }),
  })
  const valid = validInput({ none: true })

  it('refuses exactly the artifacts whose shapes do not fit, naming the distribution', () => {
    fc.assert(
      fc.property(anyInput, ({ steps, n }) => {
        const expected = shapeOracle(steps, n)
        if (expected === 'invalid') {
          expect(() => run(steps, n)).toThrow(ValidationError)
          expect(() => run(steps, n)).toThrow(/distribution: /)
          return
        }
        const jobs = run(steps, n)
        expect(jobs.length).toBe(expected.jobs)
        expect(edges(jobs).length).toBe(expected.locks)
      }),
      { numRuns: 500 },
    )
  })

  it('binds every artifact whose shapes fit, with job and lock counts that follow from the shapes', () => {
    fc.assert(
      fc.property(valid, ({ steps, n }) => {
        const expected = shapeOracle(steps, n)
        expect(expected).not.toBe('invalid')
        const jobs = run(steps, n)
        expect(jobs.length).toBe((expected as { jobs: number }).jobs)
        expect(edges(jobs).length).toBe((expected as { locks: number }).locks)
      }),
      { numRuns: 500 },
    )
  })

  it('measures an artifact exactly: it binds at its own job and lock counts as limits, not one below', () => {
    fc.assert(
      fc.property(valid, ({ steps, n }) => {
        const artifact: Artifact = { project: 'p', steps }
        const context = { initiator: 'I', workers: workers(n) }
        const jobs = bind(artifact, context)
        const locks = edges(jobs).length
        expect(bind(artifact, context, { maxJobs: jobs.length, maxLocks: locks })).toHaveLength(
          jobs.length,
        )
        expect(() => bind(artifact, context, { maxJobs: jobs.length - 1 })).toThrow(
          'jobs per order',
        )
        if (locks > 0) {
          expect(() => bind(artifact, context, { maxLocks: locks - 1 })).toThrow('locks per order')
        }
      }),
      { numRuns: 300 },
    )
  })

  it('binds an acyclic graph: every lock points to a later job, never twice to the same one', () => {
    fc.assert(
      fc.property(valid, ({ steps, n }) => {
        for (const job of run(steps, n)) {
          expect(job.locks.every((next) => next > job.id)).toBe(true)
          expect(new Set(job.locks).size).toBe(job.locks.length)
        }
      }),
      { numRuns: 500 },
    )
  })

  it('reaches every job from the first jobs when no step uses none', () => {
    fc.assert(
      fc.property(validInput({ none: false }), ({ steps, n }) => {
        const jobs = run(steps, n)
        const hasLockIn = new Set(jobs.flatMap((j) => j.locks))
        const roots = jobs.filter((j) => !hasLockIn.has(j.id)).map((j) => j.id)
        // The roots are the first step's first jobs, and everything is reachable from them.
        const firstStep = jobs.filter((j) => j.stepPath === jobs[0]!.stepPath && j.iteration === 0)
        expect(roots.every((r) => firstStep.some((j) => j.id === r))).toBe(true)
        const seen = new Set(roots)
        const stack = [...roots]
        while (stack.length > 0) {
          for (const next of jobs[stack.pop()!]!.locks) {
            if (!seen.has(next)) {
              seen.add(next)
              stack.push(next)
            }
          }
        }
        expect(seen.size).toBe(jobs.length)
      }),
      { numRuns: 500 },
    )
  })

  it('numbers the same artifact the same way every time', () => {
    fc.assert(
      fc.property(valid, ({ steps, n }) => {
        expect(run(steps, n)).toEqual(run(steps, n))
      }),
      { numRuns: 100 },
    )
  })
})
