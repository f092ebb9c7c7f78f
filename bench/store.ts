/**
 * `store-sqlite`, `store-postgres`: durable job transitions per second through the scheduler
 * service with group commit on. Eight in-process workers of 64 slots heartbeat in a loop,
 * finishing at once every job they got; orders of 1,000 independent no-op jobs keep them busy.
 * A transition is a job state change that is committed before anyone hears of it: ready,
 * running, succeeded.
 *
 * `restart`: the time from process start to serving with 1,000,000 jobs stored, all in running
 * orders (the worst case: every one is rebuilt in memory). Target ≤ 10 s on SQLite.
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { Engine } from '../src/core/engine/engine.ts'
import { Journal } from '../src/service/journal.ts'
import { SchedulerService } from '../src/service/service.ts'
import type { HeartbeatInput } from '../src/core/protocol.ts'
import { PostgresStore } from '../src/store/postgres-store.ts'
import { SqliteStore } from '../src/store/sqlite-store.ts'
import type { Store } from '../src/store/store.ts'
import { report } from './report.ts'

const pgUrl = process.env.LOCKSTEP_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
const SECONDS = Number(process.env.STORE_SECONDS ?? 5)

function packet(name: string, jobs: number) {
  return {
    name,
    jobs: Array.from({ length: jobs }, (_, i) => ({ name: `j${i}`, op: { builtin: 'noop' } })),
  }
}

async function transitions(store: Store, bench: string, target: number): Promise<void> {
  const service = await SchedulerService.start({ store, commitDelayMs: 2 })
  const workers = Array.from({ length: 8 }, (_, i) => `bench-w${i}`)
  for (const id of workers) await service.registerTarget({ id, slots: 64 })
  let succeeded = 0
  let ready = 0
  let started = 0
  service.on((e) => {
    if (e.type === 'job:succeeded') succeeded++
    else if (e.type === 'job:ready') ready++
    else if (e.type === 'attempt:started') started++
  })
  let stop = false
  // Keep about 20,000 jobs queued.
  const feeder = (async () => {
    let n = 0
    while (!stop) {
      if (ready - started < 20_000) await service.submitPacket(packet(`p${n++}`, 1000), {}, 'bench')
      else await new Promise((r) => setTimeout(r, 5))
    }
  })()
  while (ready - started < 10_000) await new Promise((r) => setTimeout(r, 5))
  const loop = async (id: string) => {
    let results: NonNullable<HeartbeatInput['results']> = []
    while (!stop) {
      const reply = await service.heartbeat(id, { results, free: 64 })
      results = reply.assignments.map((a) => ({
        jobId: a.jobId,
        attempt: a.attempt,
        result: { ok: true },
      }))
    }
  }
  const begin = performance.now()
  const base = { succeeded, ready, started }
  const loops = workers.map(loop)
  await new Promise((r) => setTimeout(r, SECONDS * 1000))
  await service.durable()
  const seconds = (performance.now() - begin) / 1000
  const done = {
    succeeded: succeeded - base.succeeded,
    ready: ready - base.ready,
    started: started - base.started,
  }
  stop = true
  await Promise.all([...loops, feeder])
  await service.close()
  const total = done.succeeded + done.ready + done.started
  process.stderr.write(
    `${bench}: ${done.succeeded} jobs succeeded in ${seconds.toFixed(1)} s (${Math.round(done.succeeded / seconds)} jobs/s)\n`,
  )
  report({
    bench,
    metric: 'transitions_per_s',
    value: Math.round(total / seconds),
    target: { min: target },
  })
  report({ bench, metric: 'jobs_per_s', value: Math.round(done.succeeded / seconds) })
}

export async function runStoreSqlite(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'lockstep-bench-'))
  try {
    await transitions(
      new SqliteStore({
        path: join(dir, 'bench.db'),
        synchronous: (process.env.SQLITE_SYNC as 'normal' | undefined) ?? 'full',
      }),
      'store-sqlite',
      60_000,
    )
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

export async function runStorePostgres(): Promise<void> {
  const store = new PostgresStore({ url: pgUrl, schema: 'lockstep_bench' })
  await store.dropSchema()
  try {
    await transitions(store, 'store-postgres', 24_000)
  } finally {
    const cleanup = new PostgresStore({ url: pgUrl, schema: 'lockstep_bench' })
    await cleanup.dropSchema()
    await cleanup.close()
  }
}

/** Fills a store with `orders` × `jobs` jobs in chains, some done, one running per order. */
export async function fillForRestart(store: Store, orders: number, jobs: number): Promise<void> {
  await store.migrate()
  const engine = new Engine({ leaseMs: 3_600_000 })
  const journal = new Journal()
  engine.on((e) => journal.add(e, engine))
  engine.registerTarget({ id: 'w1', slots: 1 })
  const body = {
    name: 'restart',
    jobs: Array.from({ length: jobs }, (_, i) => ({
      name: `j${i}`,
      op: { builtin: 'noop' },
      ...(i % 2 === 1 ? { after: [`j${i - 1}`] } : {}),
    })),
  }
  const record = engine.createPacket(body, 'bench')
  for (let o = 0; o < orders; o++) {
    engine.orderPacket(record.id, {}, 'bench')
    // Run a few jobs so the store holds every state: succeeded, running, ready, waiting.
    for (let k = 0; k < 3; k++) {
      const [a] = engine.pick('w1', 1)
      if (a !== undefined) engine.complete('w1', a.jobId, a.attempt, { ok: true })
    }
    engine.pick('w1', 1)
    await store.commit(journal.take(engine))
  }
  engine.stop()
}

export async function runRestart(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'lockstep-bench-'))
  const path = join(dir, 'restart.db')
  try {
    const filling = performance.now()
    const store = new SqliteStore({ path, synchronous: 'normal' })
    await fillForRestart(store, 1000, 1000)
    await store.close()
    process.stderr.write(
      `restart: stored 1,000,000 jobs in ${((performance.now() - filling) / 1000).toFixed(1)} s\n`,
    )
    const seconds: number[] = []
    for (let run = 0; run < 3; run++) {
      const begin = performance.now()
      await new Promise<void>((resolve, reject) => {
        const child = spawn(
          process.execPath,
          ['--max-old-space-size=8192', '--import', 'tsx', 'bench/restart-child.ts', path],
          { stdio: ['ignore', 'pipe', 'inherit'] },
        )
        child.stdout.on('data', (d: Buffer) => {
          if (d.toString().includes('serving')) {
            seconds.push((performance.now() - begin) / 1000)
            child.kill()
          }
        })
        child.on('exit', () => (seconds.length > run ? resolve() : reject(new Error('no serving'))))
      })
    }
    seconds.sort((a, b) => a - b)
    report({
      bench: 'restart',
      metric: 's_1m_jobs',
      value: Math.round(seconds[1]! * 100) / 100,
      target: { max: 10 },
    })
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
