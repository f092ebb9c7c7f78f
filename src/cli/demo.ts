/**
 * The demo of `lockstep up --examples`: each local worker holds one clinic's part of the sample
 * data; every example is submitted and followed, and its result is printed beside the same
 * statistic computed centrally over all the rows, so a reader sees federation change nothing.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { LockstepClient } from '../client/client.ts'
import { central, parseCsv } from '../core/analytics.ts'
import { LockstepError } from '../core/errors.ts'
import type { Analytic, AnalyticsArgs, Result } from '../core/analytics.ts'
import type { Out } from './output.ts'
import { follow } from './workbench-commands.ts'

/**
 * The examples and their sample data, shipped with the package: two folders up from src/cli and
 * from dist/cli alike, wherever the command is run from.
 */
const home = fileURLToPath(new URL('../../', import.meta.url))

/** Each local worker holds one part of the sample data set. */
export function sampleData(i: number): Record<string, string> {
  return { clinics: join(home, 'examples', 'data', `clinic-${i}.csv`) }
}

const examples = [
  { file: 'examples/federated-mean.yaml', central: () => centralOf('mean', { column: 'bmi' }) },
  {
    file: 'examples/federated-logreg.yaml',
    central: () =>
      centralOf('logreg', { features: ['age', 'bmi'], label: 'outcome', rate: 0.0005 }, 5),
  },
  {
    file: 'examples/secure-count.yaml',
    central: () => centralOf('count', { where: 'age > 60' }),
  },
  { file: 'examples/build.yaml', central: undefined },
  { file: 'examples/build.yaml', central: undefined },
]

/** The statistic over the three clinics' rows put together, as one machine would compute it. */
function centralOf(name: Analytic, args: AnalyticsArgs, steps = 1): Result {
  const parts = [1, 2, 3].map((i) =>
    parseCsv(readFileSync(sampleData(i).clinics!, 'utf8'), `clinic-${i}.csv`),
  )
  const table = { columns: parts[0]!.columns, rows: parts.flatMap((p) => p.rows) }
  return central(name, table, args, steps)
}

/** Runs every example on a local scheduler and prints each result beside the central one. */
export async function runExamples(
  running: { url: string; token: string },
  out: Out,
): Promise<void> {
  const c = new LockstepClient({ url: running.url, token: running.token })
  for (const example of examples) {
    const order = await c.submitDocument(readFileSync(join(home, example.file), 'utf8'))
    out(`\n${example.file}`)
    const final = await follow(c, order, false, out)
    if (final.state !== 'succeeded') continue
    out(`  result:  ${await finalResult(c, order.orderId)}`)
    const cached = (await c.jobs(order.orderId)).filter((j) => j.attempt === 0).length
    if (cached > 0) out(`  ${cached} of ${final.total} jobs served from cache, not run again`)
    if (example.central !== undefined) out(`  central: ${JSON.stringify(example.central())}`)
  }
}

/** What the last job of an order produced: its result.json, or its standard output. */
export async function finalResult(c: LockstepClient, orderId: string): Promise<string> {
  try {
    const result = await c.result(orderId)
    return result.value === undefined ? result.stdout.trim() : JSON.stringify(result.value)
  } catch (e) {
    if (e instanceof LockstepError && e.code === 'PRODUCT_NOT_FOUND') return '(no holder serves it)'
    throw e
  }
}
