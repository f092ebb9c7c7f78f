/**
 * Federated analytics, as pure functions: each builtin has a local part that a worker runs over
 * the rows of its own data, and an aggregate part that the initiator runs over the workers'
 * partial results. Only partial results leave a worker, never rows. The aggregate of the partials
 * equals the same statistic computed over all rows at once.
 */
import { ValidationError } from './errors.ts'

/** A numeric table read from CSV: a header row, then numbers. */
export interface Table {
  columns: string[]
  rows: number[][]
}

/** Reads a CSV of numbers with a header row. */
export function parseCsv(text: string, source = 'data'): Table {
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== '')
  if (lines.length === 0) throw new ValidationError([{ path: source, message: 'the CSV is empty' }])
  const columns = lines[0]!.split(',').map((c) => c.trim())
  const rows = lines.slice(1).map((line, i) => {
    const cells = line.split(',')
    if (cells.length !== columns.length) {
      throw new ValidationError([
        {
          path: `${source}:${i + 2}`,
          message: `has ${cells.length} cells, the header ${columns.length}`,
        },
      ])
    }
    return cells.map((c, k) => {
      const v = Number(c)
      if (c.trim() === '' || Number.isNaN(v)) {
        throw new ValidationError([
          { path: `${source}:${i + 2}`, message: `${columns[k]} is not a number: '${c}'` },
        ])
      }
      return v
    })
  })
  return { columns, rows }
}

const OPS = {
  '<': (a: number, b: number) => a < b,
  '<=': (a: number, b: number) => a <= b,
  '>': (a: number, b: number) => a > b,
  '>=': (a: number, b: number) => a >= b,
  '==': (a: number, b: number) => a === b,
  '!=': (a: number, b: number) => a !== b,
} as const

/**
 * A filter over rows, written `age > 50 and bmi <= 30`: comparisons of a column with a number,
 * joined by `and`.
 */
export function compileWhere(
  expr: string | undefined,
  columns: string[],
): (row: number[]) => boolean {
  if (expr === undefined || expr.trim() === '') return () => true
  const tests = expr.split(/\s+and\s+/i).map((part) => {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|==|!=|<|>)\s*(-?[0-9.]+)\s*$/.exec(part)
    if (m === null) {
      throw new ValidationError([
        {
          path: 'args.where',
          message: `'${part.trim()}' is not 'column op number' (op: < <= > >= == !=)`,
        },
      ])
    }
    const k = columnIndex(columns, m[1]!, 'args.where')
    const op = OPS[m[2] as keyof typeof OPS]
    const value = Number(m[3])
    return (row: number[]) => op(row[k]!, value)
  })
  return (row) => tests.every((t) => t(row))
}

function columnIndex(columns: string[], name: string, path: string): number {
  const k = columns.indexOf(name)
  if (k < 0) {
    throw new ValidationError([
      { path, message: `no column '${name}'; the data has ${columns.join(', ')}` },
    ])
  }
  return k
}

/** The arguments the analytics builtins take. */
export interface AnalyticsArgs {
  column?: string
  where?: string
  /** Histogram bin edges, ascending: bins are [e0, e1), [e1, e2), … */
  edges?: number[]
  /** Logistic regression: the feature columns, the 0/1 label column, the learning rate. */
  features?: string[]
  label?: string
  rate?: number
}

/** A partial or final result: plain JSON. */
export type Result = Record<string, unknown>

/** The builtins that have a local and an aggregate part. */
export const analytics = ['count', 'sum', 'mean', 'histogram', 'logreg'] as const
export type Analytic = (typeof analytics)[number]

export function isAnalytic(name: string): name is Analytic {
  return (analytics as readonly string[]).includes(name)
}

const sigmoid = (z: number) => 1 / (1 + Math.exp(-z))

/** The local part: over one worker's rows, given the results of the jobs before it. */
export function local(name: Analytic, table: Table, args: AnalyticsArgs, inputs: Result[]): Result {
  const keep = compileWhere(args.where, table.columns)
  const rows = table.rows.filter(keep)
  const col = () => columnIndex(table.columns, args.column ?? '', 'args.column')
  switch (name) {
    case 'count':
      return { count: rows.length }
    case 'sum':
    case 'mean': {
      const k = col()
      return { sum: rows.reduce((s, r) => s + r[k]!, 0), count: rows.length }
    }
    case 'histogram': {
      const k = col()
      const edges = args.edges ?? []
      const counts = new Array<number>(Math.max(0, edges.length - 1)).fill(0)
      for (const r of rows) {
        const v = r[k]!
        for (let b = 0; b < counts.length; b++) {
          if (v >= edges[b]! && v < edges[b + 1]!) {
            counts[b]!++
            break
          }
        }
      }
      return { edges, counts }
    }
    case 'logreg': {
      const features = (args.features ?? []).map((f) =>
        columnIndex(table.columns, f, 'args.features'),
      )
      const label = columnIndex(table.columns, args.label ?? '', 'args.label')
      const weights = currentWeights(inputs, features.length)
      // The gradient of the log loss, summed over the rows: [bias, w1, …].
      const gradient = new Array<number>(features.length + 1).fill(0)
      for (const r of rows) {
        let z = weights[0]!
        features.forEach((f, i) => (z += weights[i + 1]! * r[f]!))
        const err = sigmoid(z) - r[label]!
        gradient[0]! += err
        features.forEach((f, i) => (gradient[i + 1]! += err * r[f]!))
      }
      return { weights, gradient, n: rows.length }
    }
  }
}

/** The aggregate part: over the partial results of the workers. */
export function aggregate(name: Analytic, args: AnalyticsArgs, inputs: Result[]): Result {
  const total = (key: string) => inputs.reduce((s, r) => s + Number(r[key] ?? 0), 0)
  switch (name) {
    case 'count':
      return { count: total('count') }
    case 'sum':
      return { sum: total('sum'), count: total('count') }
    case 'mean': {
      const count = total('count')
      return { mean: count === 0 ? null : total('sum') / count, count }
    }
    case 'histogram': {
      const edges = (inputs[0]?.edges as number[] | undefined) ?? args.edges ?? []
      const counts = new Array<number>(Math.max(0, edges.length - 1)).fill(0)
      for (const r of inputs) (r.counts as number[]).forEach((c, b) => (counts[b]! += c))
      return { edges, counts }
    }
    case 'logreg': {
      const size = (args.features ?? []).length
      const partials = inputs.filter((r) => Array.isArray(r.gradient))
      if (partials.length === 0) {
        // The first step of a training run: start from zeros.
        return { weights: new Array<number>(size + 1).fill(0) }
      }
      const weights = currentWeights(partials, size)
      const n = partials.reduce((s, r) => s + Number(r.n), 0)
      const rate = args.rate ?? 0.1
      const next = weights.map((w, i) => {
        const g = partials.reduce((s, r) => s + (r.gradient as number[])[i]!, 0)
        return w - (rate * g) / Math.max(1, n)
      })
      return { weights: next, n }
    }
  }
}

function currentWeights(inputs: Result[], features: number): number[] {
  for (const r of inputs) if (Array.isArray(r.weights)) return r.weights as number[]
  return new Array<number>(features + 1).fill(0)
}

/**
 * The same statistic over all rows at once, as a single machine would compute it; for checking
 * that a federated run gives the central numbers. `steps` is the number of gradient steps for
 * `logreg`.
 */
export function central(name: Analytic, table: Table, args: AnalyticsArgs, steps = 1): Result {
  if (name !== 'logreg') return aggregate(name, args, [local(name, table, args, [])])
  let state: Result = aggregate(name, args, [])
  for (let s = 0; s < steps; s++) state = aggregate(name, args, [local(name, table, args, [state])])
  return state
}
