/**
 * `e2e-sqlite`, `e2e-postgres`: the whole system over loopback HTTP. A `lockstep server` process
 * and one `lockstep worker` process with 64 slots; 20,000 no-op jobs submitted in bulk (20
 * packets of 1,000). Prints jobs_per_s (targets 20,000 on SQLite, 8,000 on PostgreSQL), and the
 * latency from submission to start of a single job on an idle cluster. E2E_SLOTS sets the
 * worker's slots (64 by default, as the peers' concurrency is 10–50).
 */
import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { LockstepClient } from '../src/client/client.ts'
import { PostgresStore } from '../src/store/postgres-store.ts'
import { startLockstep, startServer, stopProcess } from './processes.ts'
import { percentile, report } from './report.ts'

const pgUrl = process.env.LOCKSTEP_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
/** Jobs in the throughput run; submitted in packets of 1,000, so rounded up to a whole packet. */
export const JOBS = Number(process.env.E2E_JOBS ?? 20_000)
const TOKEN = 'bench-admin-token'
const WORKER = 'bench-worker-token'

// E2E_PROFILE=DIR writes a CPU profile of each process there.
const profile = process.env.E2E_PROFILE

/** Runs the bench and resolves with its jobs_per_s. */
async function run(bench: string, database: string, target: number, jobs: number): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'lockstep-e2e-bench-'))
  const children: ChildProcess[] = []
  try {
    const server = await startServer(
      ['--port', '0', '--tokens', `admin:bench:${TOKEN},worker:bench:${WORKER}`, '--data-dir', dir],
      { LOCKSTEP_DATABASE_URL: database },
      profile,
    )
    children.push(server.child)
    const url = server.url
    const worker = await startLockstep(
      [
        'worker',
        '--server',
        url,
        '--token',
        WORKER,
        '--id',
        'bench',
        '--slots',
        process.env.E2E_SLOTS ?? '64',
        '--cache',
        join(dir, 'worker'),
      ],
      {},
      profile,
    )
    children.push(worker.child)
    const c = new LockstepClient({ url, token: TOKEN })
    const noop = { builtin: 'noop' }

    // Latency on an idle cluster: submission to the start of the job.
    const latencies: number[] = []
    for (let i = 0; i < 30; i++) {
      const order = await c.submit({
        packet: { name: `idle-${i}`, jobs: [{ name: 'a', op: noop }] },
      })
      for (;;) {
        const jobs = await c.jobs(order.orderId)
        if (jobs[0]!.state === 'succeeded') {
          const detail = await c.job(jobs[0]!.id)
          latencies.push(detail.attempts[0]!.transitions[0]!.at - order.createdAt)
          break
        }
        await new Promise((r) => setTimeout(r, 2))
      }
    }

    // Throughput: everything submitted at once, run by one worker process.
    const packets = Math.ceil(jobs / 1000)
    const begin = performance.now()
    const orders = await Promise.all(
      Array.from({ length: packets }, (_, p) =>
        c.submit({
          packet: {
            name: `bulk-${p}`,
            jobs: Array.from({ length: 1000 }, (_, i) => ({ name: `j${i}`, op: noop })),
          },
        }),
      ),
    )
    const submitted = (performance.now() - begin) / 1000
    for (const o of orders) {
      for (;;) {
        const { fulfilment } = await c.order(o.orderId)
        if (fulfilment.state !== 'running') break
        await new Promise((r) => setTimeout(r, 20))
      }
    }
    const seconds = (performance.now() - begin) / 1000
    process.stderr.write(
      `${bench}: ${packets * 1000} jobs in ${seconds.toFixed(2)} s, of which ${submitted.toFixed(2)} s to submit them\n`,
    )
    const jobsPerS = Math.round((packets * 1000) / seconds)
    report({ bench, metric: 'jobs_per_s', value: jobsPerS, target: { min: target } })
    report({ bench, metric: 'latency_p50_ms', value: percentile(latencies, 50) })
    report({ bench, metric: 'latency_p99_ms', value: percentile(latencies, 99) })
    return jobsPerS
  } finally {
    // Worker first, so it can say goodbye; then the scheduler.
    for (const child of children.reverse()) await stopProcess(child)
    rmSync(dir, { recursive: true, force: true })
  }
}

/** `e2e-sqlite`; resolves with its jobs_per_s. `jobs` defaults to E2E_JOBS, or 20,000. */
export async function runE2eSqlite(jobs = JOBS): Promise<number> {
  return await run('e2e-sqlite', '', 20_000, jobs)
}

export async function runE2ePostgres(): Promise<void> {
  const store = new PostgresStore({ url: pgUrl, schema: 'lockstep_bench_e2e' })
  await store.dropSchema()
  await store.close()
  try {
    await run('e2e-postgres', `${pgUrl}?schema=lockstep_bench_e2e`, 8_000, JOBS)
  } finally {
    const cleanup = new PostgresStore({ url: pgUrl, schema: 'lockstep_bench_e2e' })
    await cleanup.dropSchema()
    await cleanup.close()
  }
}
