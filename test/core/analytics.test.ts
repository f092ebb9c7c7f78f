import { describe, expect, it } from 'vitest'
import { aggregate, central, compileWhere, local, parseCsv } from '../../src/core/analytics.ts'
import type { Analytic, AnalyticsArgs, Table } from '../../src/core/analytics.ts'

const parts: Table[] = [
  parseCsv('age,bmi,outcome\n30,22.5,0\n61,31.0,1\n45,27.2,0\n'),
  parseCsv('age,bmi,outcome\n70,29.9,1\n52,24.1,0\n'),
  parseCsv('age,bmi,outcome\n66,33.3,1\n38,21.0,0\n59,28.8,1\n80,26.0,1\n'),
]
const all: Table = { columns: parts[0]!.columns, rows: parts.flatMap((p) => p.rows) }

describe('federated analytics', () => {
  it.each<[Analytic, AnalyticsArgs]>([
    ['count', {}],
    ['count', { where: 'age > 60 and bmi >= 30' }],
    ['sum', { column: 'bmi' }],
    ['mean', { column: 'age', where: 'outcome == 1' }],
    ['histogram', { column: 'age', edges: [0, 40, 60, 120] }],
  ])('%s %j over three parts equals the central result', (name, args) => {
    const partials = parts.map((p) => local(name, p, args, []))
    const federated = aggregate(name, args, partials)
    const expected = central(name, all, args)
    // Equal up to the order of floating-point additions.
    expect(Object.keys(federated)).toEqual(Object.keys(expected))
    for (const [key, value] of Object.entries(expected)) {
      if (typeof value === 'number') expect(federated[key]).toBeCloseTo(value, 9)
      else expect(federated[key]).toEqual(value)
    }
  })

  it('gives the central numbers for a few known cases', () => {
    expect(central('count', all, { where: 'age > 60' })).toEqual({ count: 4 })
    expect(central('mean', all, { column: 'age' })).toEqual({ mean: 501 / 9, count: 9 })
    expect(central('histogram', all, { column: 'age', edges: [0, 40, 60, 120] })).toEqual({
      edges: [0, 40, 60, 120],
      counts: [2, 3, 4],
    })
  })

  it('takes the same gradient steps federated as centrally', () => {
    const args = { features: ['age', 'bmi'], label: 'outcome', rate: 0.001 }
    let state = aggregate('logreg', args, [])
    expect(state).toEqual({ weights: [0, 0, 0] })
    for (let step = 0; step < 4; step++) {
      state = aggregate(
        'logreg',
        args,
        parts.map((p) => local('logreg', p, args, [state])),
      )
    }
    const expected = central('logreg', all, args, 4).weights as number[]
    const weights = state.weights as number[]
    // An intercept and one weight per feature, on both sides.
    expect(expected).toHaveLength(3)
    expect(weights).toHaveLength(expected.length)
    weights.forEach((w, i) => expect(w).toBeCloseTo(expected[i]!, 12))
    // And it learns: older patients with a higher BMI are more likely positive.
    expect((state.weights as number[])[1]).toBeGreaterThan(0)
  })

  it.each([
    ['age,bmi\n1,2,3\n', 'data:2: has 3 cells, the header 2'],
    ['age,bmi\n1,x\n', "data:2: bmi is not a number: 'x'"],
    ['', 'data: the CSV is empty'],
  ])('refuses a bad CSV %j', (text, message) => {
    expect(() => parseCsv(text)).toThrow(message)
  })

  it('names what is wrong in a filter or a column', () => {
    expect(() => compileWhere('age >> 3', ['age'])).toThrow(
      "args.where: 'age >> 3' is not 'column op number'",
    )
    expect(() => local('mean', all, { column: 'weight' }, [])).toThrow(
      "args.column: no column 'weight'; the data has age, bmi, outcome",
    )
  })
})
