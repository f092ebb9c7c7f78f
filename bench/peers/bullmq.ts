/**
 * BullMQ on the machine's Redis: one Worker of concurrency 50 drains JOBS no-op jobs added with
 * `addBulk` in batches of BATCH. Timed from the first `addBulk` to the last 'completed' event,
 * which BullMQ emits once the job is moved to the completed set in Redis. The queue has a name
 * and prefix of its own, obliterated before and after; nothing else in Redis is touched.
 */
import { batches, done, JOBS, load, stopwatch, until } from './common.ts'

interface Connection {
  connection: { host: string; port: number }
  prefix: string
}
interface Queue {
  waitUntilReady(): Promise<unknown>
  addBulk(jobs: { name: string; data: unknown }[]): Promise<unknown[]>
  obliterate(opts: { force: boolean }): Promise<void>
  close(): Promise<void>
}
interface Worker {
  on(event: 'completed', listener: () => void): void
  on(event: 'failed', listener: (job: unknown, err: Error) => void): void
  waitUntilReady(): Promise<unknown>
  close(): Promise<void>
}
interface BullMq {
  Queue: new (name: string, opts: Connection) => Queue
  Worker: new (
    name: string,
    processor: () => Promise<void>,
    opts: Connection & { concurrency: number },
  ) => Worker
}

const NAME = 'lockstep-bench-peers'
const url = new URL(process.env.PEERS_REDIS_URL ?? 'redis://127.0.0.1:6379')
const opts: Connection = {
  connection: { host: url.hostname, port: Number(url.port || 6379) },
  prefix: 'lockstep-bench',
}

const { Queue, Worker } = await load<BullMq>('bullmq')
const queue = new Queue(NAME, opts)
// ioredis retries a refused connection for ever: give up on Redis after 5 s.
const ready = await Promise.race([
  queue.waitUntilReady().then(() => true),
  new Promise<false>((r) => setTimeout(() => r(false), 5000)),
])
if (!ready) throw new Error(`Redis at ${url.host} did not answer within 5 s`)
await queue.obliterate({ force: true })
try {
  let completed = 0
  let failure: Error | undefined
  const worker = new Worker(NAME, async () => {}, { ...opts, concurrency: 50 })
  worker.on('completed', () => void completed++)
  worker.on('failed', (_job, err) => void (failure = err))
  await worker.waitUntilReady()

  const elapsed = stopwatch()
  await Promise.all(
    batches(JOBS, (i) => ({ name: 'noop', data: { i } })).map((b) => queue.addBulk(b)),
  )
  const enqueueSeconds = elapsed()
  await until(() => {
    if (failure !== undefined) throw failure
    return completed >= JOBS
  })
  const seconds = elapsed()
  await worker.close()
  done({ jobs: JOBS, seconds, enqueueSeconds })
} finally {
  await queue.obliterate({ force: true })
  await queue.close()
}
