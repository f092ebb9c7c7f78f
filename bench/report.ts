/**
 * Bench output: one JSON line per figure on stdout, a readable table on stderr.
 */

/** One measured figure. */
export interface Figure {
  bench: string
  metric: string
  value: number
  /** What the figure should reach, if there is a target; `max` targets are upper bounds. */
  target?: { min?: number; max?: number }
  /** Why there is no figure: the value is then NaN, printed as null. */
  error?: string
}

const rows: Figure[] = []

/** Prints a figure as a JSON line on stdout and keeps it for the table. */
export function report(figure: Figure): void {
  rows.push(figure)
  const { bench, metric, value, error } = figure
  process.stdout.write(`${JSON.stringify({ bench, metric, value, error })}\n`)
}

/** Prints the figures reported so far as a table on stderr. */
export function printTable(): void {
  const lines = rows.map((r) => {
    const target =
      r.target?.min !== undefined
        ? `≥ ${r.target.min}`
        : r.target?.max !== undefined
          ? `≤ ${r.target.max}`
          : ''
    const met =
      r.target === undefined
        ? ''
        : (r.target.min === undefined || r.value >= r.target.min) &&
            (r.target.max === undefined || r.value <= r.target.max)
          ? 'met'
          : 'MISSED'
    if (r.error !== undefined) return [r.bench, r.metric, 'failed', target, r.error]
    return [r.bench, r.metric, String(r.value), target, met]
  })
  const head = ['bench', 'metric', 'value', 'target', '']
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)))
  const fmt = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd()
  process.stderr.write(`${[fmt(head), ...lines.map(fmt)].join('\n')}\n`)
}

/** The median of some numbers. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]!
}

/** The p-th percentile (0–100) of some numbers, nearest rank. */
export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[rank]!
}
