/**
 * `core`: the dispatch core alone, on one thread. 1,000 workers, 100,000 queued jobs with random
 * dependencies and cache reports; then schedule → pick → complete in a loop that keeps the queue
 * at 100,000. Each worker's cache holds 100 products: a completion that overflows it reports an
 * eviction, as a real worker does, so the cache index stays the size of the workers' caches. Targets: ≥ 250,000 ops/s, ≤ 1 KiB of heap per queued job, pick cost logarithmic.
 */
import { performance } from 'node:perf_hooks'
import { FakeClock } from '../src/core/clock.ts'
import { Scheduler } from '../src/core/dispatch/scheduler.ts'
import { percentile, report } from './report.ts'
import { seededRandom } from '../src/core/random.ts'

const WORKERS = 1000
const QUEUED = 100_000
const OPS = Number(process.env.CORE_OPS ?? 1_000_000)

/** Each worker's cache holds this many products; older ones are evicted and reported. */
const CACHE_PER_WORKER = 100

interface World {
  s: Scheduler
  /** Per worker, the products it holds, oldest first (a ring). */
  caches: string[][]
  clock: FakeClock
  workers: string[]
  products: string[]
  next: number
  random: () => number
}

function world(seed: number): World {
  const clock = new FakeClock()
  const s = new Scheduler({ cacheTimeoutMs: 50, depsTimeoutMs: 100, clock })
  const workers = Array.from({ length: WORKERS }, (_, i) => `worker-${i}`)
  for (const w of workers) s.registerWorker(w)
  const random = seededRandom(seed)
  const caches = workers.map((): string[] => [])
  const w: World = { s, caches, clock, workers, products: [], next: 0, random }
  // Products already in caches: what earlier builds left behind.
  for (let i = 0; i < 20_000; i++) {
    const id = `product-${i}`
    w.products.push(id)
    cache(w, Math.floor(random() * WORKERS), id)
  }
  return w
}

/** A worker reports a product, evicting (and reporting) its oldest when its cache is full. */
function cache(w: World, worker: number, id: string): void {
  const held = w.caches[worker]!
  held.push(id)
  w.s.addCached(w.workers[worker]!, id)
  if (held.length > CACHE_PER_WORKER) w.s.removeCached(w.workers[worker]!, held.shift()!)
}

/** One new job: 20% without dependencies, the rest with 1–3 random cached products; 5% cached itself. */
function schedule(w: World): void {
  const id = `job-${w.next++}`
  const r = w.random()
  let deps: string[] | undefined
  if (r >= 0.2) {
    const n = 1 + Math.floor(w.random() * 3)
    deps = []
    for (let i = 0; i < n; i++) deps.push(w.products[Math.floor(w.random() * w.products.length)]!)
  }
  if (w.random() < 0.05) cache(w, Math.floor(w.random() * WORKERS), id)
  w.s.scheduleJob({ id, deps, priority: 1 + Math.floor(w.random() * 100) })
}

function fill(w: World): void {
  for (let i = 0; i < QUEUED; i++) schedule(w)
  // Let the first stages run out, so the loop starts in a steady state.
  w.clock.advance(200)
}

/** Runs `ops` schedule → pick → complete cycles; `time` records each pick's cost in µs. */
function loop(w: World, ops: number, time?: Float64Array): number {
  let done = 0
  let misses = 0
  for (let i = 0; i < ops; i++) {
    schedule(w)
    let worker = Math.floor(w.random() * WORKERS)
    let start = 0
    if (time !== undefined) start = performance.now()
    let picked = w.s.tryPickJob(w.workers[worker]!)
    if (time !== undefined) time[i] = (performance.now() - start) * 1000
    while (picked === null) {
      misses++
      worker = Math.floor(w.random() * WORKERS)
      picked = w.s.tryPickJob(w.workers[worker]!)
    }
    const id = picked.job.id
    w.s.onJobComplete(w.workers[worker]!, id, { ok: true })
    w.caches[worker]!.push(id)
    if (w.caches[worker]!.length > CACHE_PER_WORKER)
      w.s.removeCached(w.workers[worker]!, w.caches[worker]!.shift()!)
    done++
    if ((i & 1023) === 0) w.clock.advance(1)
  }
  return misses / done
}

/**
 * Heap per queued job, measured first, in a fresh world, so that nothing of the other phases is
 * collected while it runs. The job ids and dependency lists count: a caller holds them too, but
 * the scheduler keeps them alive.
 */
function heapPerQueuedJob(): number {
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc === undefined) {
    process.stderr.write('core: run node with --expose-gc to measure heap per queued job\n')
    return NaN
  }
  const c = world(3)
  gc()
  gc()
  const before = process.memoryUsage().heapUsed
  for (let i = 0; i < QUEUED; i++) schedule(c)
  gc()
  gc()
  const perJob = Math.round((process.memoryUsage().heapUsed - before) / QUEUED)
  if (c.s.stats().waiting !== QUEUED) throw new Error('the heap measurement lost jobs')
  c.s.stop()
  return perJob
}

function throughput(): number {
  const a = world(1)
  fill(a)
  loop(a, 100_000) // warm-up
  const start = performance.now()
  const missRate = loop(a, OPS)
  const seconds = (performance.now() - start) / 1000
  process.stderr.write(
    `core: ${OPS} ops in ${seconds.toFixed(2)} s with ${a.s.stats().waiting} queued; ${(missRate * 100).toFixed(1)}% of picks found nothing and were retried on another worker\n`,
  )
  a.s.stop()
  return Math.round(OPS / seconds)
}

function pickP99(): number {
  const b = world(2)
  fill(b)
  const times = new Float64Array(200_000)
  loop(b, times.length, times)
  b.s.stop()
  return percentile(Array.from(times), 99)
}

export function runCore(): void {
  const heapPerJob = heapPerQueuedJob()
  const opsPerS = throughput()
  const p99 = pickP99()
  report({ bench: 'core', metric: 'ops_per_s', value: opsPerS, target: { min: 250_000 } })
  report({ bench: 'core', metric: 'pick_p99_us', value: Math.round(p99 * 100) / 100 })
  report({
    bench: 'core',
    metric: 'heap_bytes_per_queued_job',
    value: heapPerJob,
    target: { max: 1024 },
  })
}
