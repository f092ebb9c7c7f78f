/**
 * pg-boss on the machine's PostgreSQL, in a schema of its own (the parent drops it before and
 * after): one `work` loop with a batch of 1,000 and the shortest polling interval pg-boss allows
 * (0.5 s) drains JOBS no-op jobs added with `insert` in batches of BATCH. pg-boss marks a batch
 * completed after the handler returns without waiting for it, so the clock stops when the
 * database says every job is completed.
 */
import { batches, done, JOBS, load, pgUrl, stopwatch, until } from './common.ts'

interface PgBoss {
  on(event: 'error', listener: (err: Error) => void): void
  start(): Promise<unknown>
  createQueue(name: string): Promise<void>
  insert(jobs: { name: string; data: unknown }[]): Promise<unknown>
  work(
    name: string,
    opts: { batchSize: number; pollingIntervalSeconds: number },
    handler: (jobs: unknown[]) => Promise<void>,
  ): Promise<string>
  getDb(): { executeSql(text: string, values: unknown[]): Promise<{ rows: unknown[] }> }
  stop(opts: { graceful: boolean; wait: boolean }): Promise<void>
}

const NAME = 'lockstep-bench-peers'
const SCHEMA = process.env.PEERS_SCHEMA ?? 'bench_pgboss'

const { default: PgBoss } = await load<{
  default: new (opts: { connectionString: string; schema: string }) => PgBoss
}>('pg-boss')
const boss = new PgBoss({ connectionString: pgUrl, schema: SCHEMA })
let failure: Error | undefined
boss.on('error', (err) => void (failure = err))
await boss.start()
try {
  await boss.createQueue(NAME)
  await boss.work(NAME, { batchSize: 1000, pollingIntervalSeconds: 0.5 }, async () => {})

  const completed = async () => {
    if (failure !== undefined) throw failure
    const { rows } = await boss
      .getDb()
      .executeSql(`SELECT count(*)::int AS n FROM ${SCHEMA}.job WHERE name = $1 AND state = $2`, [
        NAME,
        'completed',
      ])
    return (rows[0] as { n: number }).n
  }
  const elapsed = stopwatch()
  await Promise.all(batches(JOBS, (i) => ({ name: NAME, data: { i } })).map((b) => boss.insert(b)))
  const enqueueSeconds = elapsed()
  await until(async () => (await completed()) >= JOBS, 20)
  done({ jobs: JOBS, seconds: elapsed(), enqueueSeconds })
} finally {
  await boss.stop({ graceful: false, wait: true })
}
