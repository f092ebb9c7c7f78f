/**
 * `bind`: an artifact of 100 steps (alternating parallel and finalize) over 1,000 workers, bound
 * and turned into a job graph with UUIDv7 ids and lock rows. Target: ≤ 500 ms.
 */
import { performance } from 'node:perf_hooks'
import { IdGenerator, bind, toJobGraph } from '../src/index.ts'
import type { Artifact, StepSpec } from '../src/index.ts'
import { median, report } from './report.ts'

export function runBind(): void {
  const steps: StepSpec[] = Array.from({ length: 100 }, (_, i) =>
    i % 2 === 0
      ? { kind: 'parallel', op: { builtin: 'count' } }
      : { kind: 'finalize', op: { builtin: 'sum' } },
  )
  const artifact: Artifact = { project: 'bench', steps }
  const context = {
    initiator: 'scheduler',
    workers: Array.from({ length: 1000 }, (_, i) => `w${i}`),
  }
  const times: number[] = []
  let jobs = 0
  let locks = 0
  for (let run = 0; run < 7; run++) {
    const start = performance.now()
    const graph = toJobGraph(bind(artifact, context), new IdGenerator(), Date.now())
    times.push(performance.now() - start)
    jobs = graph.jobs.length
    locks = graph.locks.length
  }
  process.stderr.write(
    `bind: ${jobs} jobs, ${locks} locks; runs (ms): ${times.map((t) => t.toFixed(1)).join(' ')}\n`,
  )
  // The first run includes warm-up (JIT, schema compilation); the figure is the median of all seven.
  report({
    bench: 'bind',
    metric: 'ms_100x1000',
    value: Math.round(median(times) * 10) / 10,
    target: { max: 500 },
  })
  report({
    bench: 'bind',
    metric: 'ms_100x1000_cold',
    value: Math.round(times[0]! * 10) / 10,
    target: { max: 500 },
  })
}
