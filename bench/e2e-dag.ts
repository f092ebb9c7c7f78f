/**
 * `e2e-dag`: a build graph over the whole system. A `lockstep server` process on SQLite and two
 * `lockstep worker` processes of 32 slots each; DAG_JOBS no-op jobs (20,000 by default) in
 * packets of 1,000, each packet 20 layers of 50 jobs where every job after the first layer reads
 * the products of 1–3 jobs of the layer before (fan-out and fan-in). Products pass between the
 * two workers as they would in a build. Prints jobs_per_s and the share of inputs that were in
 * the worker's cache already when the job was handed to it (`lockstep_inputs_handed_out_total`).
 */
import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { LockstepClient } from '../src/client/client.ts'
import { seededRandom } from '../src/core/random.ts'
import { startLockstep, startServer, stopProcess, untilSucceeded } from './processes.ts'
import { report } from './report.ts'

const JOBS = Number(process.env.DAG_JOBS ?? 20_000)
const LAYERS = 20
const WIDTH = 50
/** E2E_PROFILE=DIR writes a CPU profile of each process there, as for `e2e-sqlite`. */
const profile = process.env.E2E_PROFILE
const TOKEN = 'bench-admin-token'
const WORKER = 'bench-worker-token'

/** One packet: LAYERS × WIDTH no-op jobs, each after the first layer reading 1–3 of the layer before. */
function buildGraph(p: number, random: () => number) {
  const jobs: { name: string; op: { builtin: string }; after?: string[] }[] = []
  for (let layer = 0; layer < LAYERS; layer++) {
    for (let i = 0; i < WIDTH; i++) {
      const job: (typeof jobs)[number] = { name: `l${layer}-${i}`, op: { builtin: 'noop' } }
      if (layer > 0) {
        const reads = new Set<number>()
        const n = 1 + Math.floor(random() * 3)
        while (reads.size < n) reads.add(Math.floor(random() * WIDTH))
        job.after = [...reads].map((j) => `l${layer - 1}-${j}`)
      }
      jobs.push(job)
    }
  }
  return { name: `dag-${p}`, jobs }
}

export async function runE2eDag(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'lockstep-dag-bench-'))
  const children: ChildProcess[] = []
  try {
    const server = await startServer(
      ['--port', '0', '--tokens', `admin:bench:${TOKEN},worker:*:${WORKER}`, '--data-dir', dir],
      { LOCKSTEP_DATABASE_URL: '' },
      profile,
    )
    children.push(server.child)
    for (const id of ['w1', 'w2']) {
      const worker = await startLockstep(
        [
          'worker',
          ...['--server', server.url, '--token', WORKER, '--id', id],
          ...['--slots', '32', '--cache', join(dir, id)],
        ],
        {},
        profile,
      )
      children.push(worker.child)
    }
    const c = new LockstepClient({ url: server.url, token: TOKEN })
    const random = seededRandom(15)
    const packets = Math.ceil(JOBS / (LAYERS * WIDTH))
    const begin = performance.now()
    const orders = await Promise.all(
      Array.from({ length: packets }, (_, p) => c.submit({ packet: buildGraph(p, random) })),
    )
    await untilSucceeded(
      c,
      orders.map((o) => o.orderId),
      50,
    )
    const seconds = (performance.now() - begin) / 1000
    const metrics = await (await fetch(`${server.url}/metrics`)).text()
    const count = (local: boolean) =>
      Number(
        new RegExp(`^lockstep_inputs_handed_out_total\\{local="${local}"\\} (\\d+)$`, 'm').exec(
          metrics,
        )?.[1] ?? 0,
      )
    const local = count(true)
    const fetched = count(false)
    const jobs = packets * LAYERS * WIDTH
    process.stderr.write(
      `e2e-dag: ${jobs} jobs in ${seconds.toFixed(2)} s on 2 workers; inputs ${local} local, ${fetched} fetched\n`,
    )
    report({ bench: 'e2e-dag', metric: 'jobs_per_s', value: Math.round(jobs / seconds) })
    report({
      bench: 'e2e-dag',
      metric: 'local_inputs_pct',
      value: Math.round((1000 * local) / Math.max(1, local + fetched)) / 10,
    })
  } finally {
    for (const child of children.reverse()) await stopProcess(child)
    rmSync(dir, { recursive: true, force: true })
  }
}
