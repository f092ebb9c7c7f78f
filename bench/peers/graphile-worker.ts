/**
 * Graphile Worker on the machine's PostgreSQL, in a schema of its own (the parent drops it before
 * and after): one `run` pool of concurrency 10 drains JOBS no-op jobs added with `addJobs` in
 * batches of BATCH. Graphile Worker deletes a job once it has succeeded, so the clock stops when
 * its jobs table is empty.
 */
import { batches, done, JOBS, load, pgUrl, stopwatch, until } from './common.ts'

interface Options {
  connectionString: string
  schema: string
  logger: unknown
}
interface WorkerUtils {
  migrate(): Promise<void>
  addJobs(specs: { identifier: string; payload: unknown }[]): Promise<unknown>
  withPgClient<T>(
    fn: (client: { query(text: string): Promise<{ rows: unknown[] }> }) => Promise<T>,
  ): Promise<T>
  release(): Promise<void>
}
interface Runner {
  stop(): Promise<void>
  events: { on(event: 'job:error', listener: (e: { error: unknown }) => void): void }
}
interface GraphileWorker {
  Logger: new (factory: () => (level: string, message: string) => void) => unknown
  makeWorkerUtils: (opts: Options) => Promise<WorkerUtils>
  run: (
    opts: Options & {
      concurrency: number
      noHandleSignals: boolean
      taskList: Record<string, () => Promise<void>>
    },
  ) => Promise<Runner>
}

const SCHEMA = process.env.PEERS_SCHEMA ?? 'bench_graphile'

const { Logger, makeWorkerUtils, run } = await load<GraphileWorker>('graphile-worker')
// Errors only: at its default level Graphile Worker logs every job.
const logger = new Logger(() => (level, message) => {
  if (level === 'error') process.stderr.write(`${message}\n`)
})
const opts: Options = { connectionString: pgUrl, schema: SCHEMA, logger }
const utils = await makeWorkerUtils(opts)
try {
  await utils.migrate()
  const runner = await run({
    ...opts,
    concurrency: 10,
    noHandleSignals: true,
    taskList: { noop: async () => {} },
  })
  let failure: Error | undefined
  runner.events.on('job:error', ({ error }) => {
    failure = error instanceof Error ? error : new Error(String(error))
  })
  try {
    const left = () =>
      utils.withPgClient(async (client) => {
        const { rows } = await client.query(
          `SELECT count(*)::int AS n FROM ${SCHEMA}._private_jobs`,
        )
        return (rows[0] as { n: number }).n
      })
    const elapsed = stopwatch()
    await Promise.all(
      batches(JOBS, (i) => ({ identifier: 'noop', payload: { i } })).map((b) => utils.addJobs(b)),
    )
    const enqueueSeconds = elapsed()
    await until(async () => {
      if (failure !== undefined) throw failure
      return (await left()) === 0
    }, 20)
    done({ jobs: JOBS, seconds: elapsed(), enqueueSeconds })
  } finally {
    await runner.stop()
  }
} finally {
  await utils.release()
}
