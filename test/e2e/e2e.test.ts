/**
 * Lockstep end to end: the real `lockstep server` and `lockstep worker` processes on loopback
 * ports, running real processes as jobs and passing products between workers; once with the
 * scheduler on SQLite and once on PostgreSQL.
 */
import { existsSync, readFileSync, watch } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { main } from '../../src/cli/main.ts'
import { LockstepClient } from '../../src/client/client.ts'
import { central } from '../../src/core/analytics.ts'
import { LockstepError } from '../../src/core/errors.ts'
import { checkLeaks } from '../leaks.ts'
import { seeded } from '../seed.ts'
import { backends } from '../store/backends.ts'
import type { Backend } from '../store/backends.ts'
import { BOB, Cluster, WORKBENCH, allClinics, makeThenRead, sh } from './cluster.ts'

const opened = checkLeaks()
const random = seeded('e2e')

/** `makeThenRead` succeeded: w2 read what w1 made, and now holds w1's product too. */
async function expectPassed(cluster: Cluster, order: { orderId: string }): Promise<void> {
  const c = cluster.client()
  const f = await cluster.finished(order.orderId)
  const [make, read] = await c.jobs(order.orderId)
  expect(f.state, JSON.stringify((await c.job(read!.id)).attempts)).toBe('succeeded')
  const product = await cluster.product(order.orderId, 'read')
  expect(readFileSync(join(product, 'stdout'), 'utf8')).toBe('hello')
  const holders = (await c.products(order.orderId)).find((p) => p.jobId === make!.id)!.holders
  expect(holders.map((h) => h.target).sort()).toEqual(['w1', 'w2'])
}

/** A job that starts a background process, writes its pid to `file`, and waits for it. */
const holdsASleep = (file: string) => sh(`sleep 300 & echo $! > ${file}; wait`)

/** The pid a job wrote to `file`, once it is written whole. */
function pidWritten(file: string, timeoutMs = 20_000): Promise<number> {
  return new Promise((resolve, reject) => {
    const watcher = watch(dirname(file))
    const timer = setTimeout(() => {
      watcher.close()
      reject(new Error(`no pid in ${file} after ${timeoutMs} ms`))
    }, timeoutMs)
    const check = () => {
      const m = /^(\d+)\n$/.exec(existsSync(file) ? readFileSync(file, 'utf8') : '')
      if (m === null) return
      clearTimeout(timer)
      watcher.close()
      resolve(Number(m[1]))
    }
    watcher.on('change', check)
    check()
  })
}

/** True while the process runs (a zombie waiting to be reaped has ended). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2))
  } catch {
    return false
  }
}

/** Waits, up to a bound, for a process that is not ours (so no exit event reaches us) to end. */
async function ended(pid: number, timeoutMs = 20_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
  return !alive(pid)
}

describe.each(backends)('end to end: %s', (_name, make) => {
  let backend: Backend
  let cluster: Cluster

  beforeEach(() => {
    backend = make('e2e')
    cluster = new Cluster({ databaseUrl: backend.url, opened })
  })

  /** Processes jobs started outside the worker's reach; killed after the test whatever it says. */
  const strays: number[] = []

  afterEach(async () => {
    for (const pid of strays.splice(0)) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {
        // Gone, as it should be.
      }
    }
    await cluster.stopAll()
    await backend.destroy()
  })

  it('runs echo OK on a worker and keeps its output as the product', async () => {
    await cluster.server()
    await cluster.worker('w1')
    const order = await cluster
      .client()
      .submit({ packet: { name: 'hello', jobs: [{ name: 'echo', op: sh('echo OK') }] } })
    expect((await cluster.finished(order.orderId)).state).toBe('succeeded')
    // The scheduler keeps its state in this suite's backend.
    const stored = await backend.query<{ n: number | string }>('SELECT count(*) AS n FROM orders')
    expect(stored.map((r) => Number(r.n))).toEqual([1])
    const product = await cluster.product(order.orderId, 'echo')
    expect(readFileSync(join(product, 'stdout'), 'utf8')).toBe('OK\n')
    // The CLI shows the output and downloads the products.
    const lines: string[] = []
    const cli = (...args: string[]) =>
      main([...args, '--server', cluster.url, '--token', WORKBENCH], (l) => lines.push(l))
    const [job] = await cluster.client().jobs(order.orderId)
    expect(await cli('logs', job!.id)).toBe(0)
    expect(lines).toEqual(['attempt 1 on w1: succeeded (exit code 0)', 'OK\n'])
    const to = join(cluster.dir, 'download')
    expect(await cli('download', order.orderId, '--to', to)).toBe(0)
    expect(readFileSync(join(to, 'echo', 'stdout'), 'utf8')).toBe('OK\n')
  }, 30_000)

  it('keeps the end of a failed job’s stderr with its attempt', async () => {
    await cluster.server()
    await cluster.worker('w1')
    const c = cluster.client()
    const order = await c.submit({
      packet: { name: 'bad', jobs: [{ name: 'bad', op: sh('echo "no such input" >&2; exit 3') }] },
    })
    expect((await cluster.finished(order.orderId)).reason).toBe(
      'job bad failed: exit-code 3: no such input',
    )
  }, 30_000)

  it('passes a product from the worker that made it to the job that reads it', async () => {
    await cluster.server()
    await cluster.worker('w1')
    await cluster.worker('w2')
    const c = cluster.client()
    await expectPassed(cluster, await c.submit({ packet: makeThenRead }))
  }, 30_000)

  it('retries elsewhere the job of a worker killed with SIGKILL', async () => {
    await cluster.server(['--lease-ms', '1500'])
    const workers = new Map([
      ['w1', await cluster.worker('w1')],
      ['w2', await cluster.worker('w2')],
    ])
    const c = cluster.client()
    const events = await cluster.events()
    const order = await c.submit({
      packet: {
        name: 'slow',
        jobs: [
          {
            name: 'slow',
            op: sh('sleep 1; echo done'),
            failure: { attempts: 2, backoffMs: 0, otherTarget: true },
          },
        ],
      },
    })
    const [job] = await c.jobs(order.orderId)
    // Killed once its first attempt is stored as started on a worker.
    const started = (seen: typeof events.seen) =>
      seen.find((e) => e.type === 'attempt:started')?.data as { target: string } | undefined
    const target = started(await events.until((seen) => started(seen) !== undefined))!.target
    workers.get(target)!.child.kill('SIGKILL')
    const f = await cluster.finished(order.orderId)
    const attempts = (await c.job(job!.id)).attempts
    expect(f.state, JSON.stringify(attempts)).toBe('succeeded')
    expect(attempts.map((a) => [a.target, a.state, a.reason])).toEqual([
      [target, 'failed', 'worker-lost'],
      [target === 'w1' ? 'w2' : 'w1', 'succeeded', undefined],
    ])
  }, 30_000)

  it('finishes every order when the scheduler is killed and restarted mid-run', async () => {
    // A start stored just before the kill may never reach its worker: a short lease finds it.
    const first = await cluster.server(['--lease-ms', '3000'])
    await cluster.worker('w1', ['--slots', '4'])
    await cluster.worker('w2', ['--slots', '4'])
    const c = cluster.client()
    const events = await cluster.events()
    // The kill comes once a seeded number of the 60 jobs are stored as succeeded: mid-run.
    const killAfter = random.int(3, 45)
    const orders = []
    for (let o = 0; o < 3; o++) {
      orders.push(
        await c.submit({
          packet: {
            name: `run-${o}`,
            jobs: Array.from({ length: 20 }, (_, i) => ({
              name: `j${i}`,
              op: sh('sleep 0.05'),
              ...(i > 0 ? { after: [`j${i - 1}`] } : {}),
            })),
          },
        }),
      )
    }
    const succeeded = (seen: typeof events.seen) =>
      seen.filter((e) => e.type === 'job:succeeded').length
    const since = Date.now()
    await events.until((seen) => succeeded(seen) >= killAfter)
    first.child.kill('SIGKILL')
    random.log(
      `scheduler killed after ${succeeded(events.seen)} of 60 jobs succeeded (asked ${killAfter}), ${Date.now() - since} ms after the orders`,
    )
    expect(succeeded(events.seen)).toBeLessThan(60)
    await first.exited
    await cluster.server(['--lease-ms', '3000'])
    for (const o of orders) {
      const f = await cluster.finished(o.orderId, 60_000)
      const failed = (await c.jobs(o.orderId)).filter((j) => j.state !== 'succeeded')
      const why = failed.map((j) => `${j.name} ${j.state} ${j.reason ?? ''}`).join('; ')
      expect(f.state, `order ${o.orderId}: ${why}`).toBe('succeeded')
      expect(f.counts.succeeded).toBe(20)
    }
  }, 90_000)

  it('runs the federated examples over three workers and gets the central numbers', async () => {
    await cluster.server()
    await cluster.clinics()
    const c = cluster.client()
    const all = allClinics()
    const result = async (file: string) => {
      const order = await c.submitDocument(readFileSync(file, 'utf8'))
      expect((await cluster.finished(order.orderId)).state).toBe('succeeded')
      const jobs = await c.jobs(order.orderId)
      const last = jobs[jobs.length - 1]!
      const dir = await cluster.product(order.orderId, last.name)
      return JSON.parse(readFileSync(join(dir, 'out', 'result.json'), 'utf8')) as Record<
        string,
        unknown
      >
    }
    const mean = await result('examples/federated-mean.yaml')
    const expected = central('mean', all, { column: 'bmi' })
    expect(mean.count).toBe(expected.count)
    expect(mean.mean as number).toBeCloseTo(expected.mean as number, 9)
    const count = await result('examples/secure-count.yaml')
    expect(count).toEqual(central('count', all, { where: 'age > 60' }))
    const model = await result('examples/federated-logreg.yaml')
    const weights = central(
      'logreg',
      all,
      { features: ['age', 'bmi'], label: 'outcome', rate: 0.0005 },
      5,
    ).weights as number[]
    const got = model.weights as number[]
    expect(got).toHaveLength(weights.length)
    expect(weights.length).toBeGreaterThan(0)
    got.forEach((w, i) => expect(w).toBeCloseTo(weights[i]!, 12))
  }, 60_000)

  it('serves a job with a cache key it has already made from the cache, without running it', async () => {
    await cluster.server()
    await cluster.worker('w1')
    const runs = join(cluster.dir, 'runs')
    const packet = {
      name: 'stamp',
      jobs: [{ name: 'stamp', op: sh(`echo ran >> ${runs}; echo made`), cache: 'stamp@1' }],
    }
    const c = cluster.client()
    const first = await c.submit({ packet })
    expect((await cluster.finished(first.orderId)).state).toBe('succeeded')
    const second = await c.submit({ packet })
    expect((await cluster.finished(second.orderId)).state).toBe('succeeded')
    expect(readFileSync(runs, 'utf8')).toBe('ran\n')
    const [job] = await c.jobs(second.orderId)
    expect(job).toMatchObject({ state: 'succeeded', attempt: 0 })
  }, 30_000)

  it('runs a job three concurrent orders share once, and its product reaches every worker that reads it', async () => {
    await cluster.server()
    for (const id of ['w1', 'w2', 'w3']) await cluster.worker(id)
    const runs = join(cluster.dir, 'runs')
    const c = cluster.client()
    const orders = await Promise.all(
      ['w1', 'w2', 'w3'].map((target) =>
        c.submit({
          packet: {
            name: `share-${target}`,
            jobs: [
              {
                name: 'shared',
                op: sh(`echo ran >> ${runs}; sleep 0.3; printf data > "$LOCKSTEP_OUT/file"`),
                cache: 'shared@1',
              },
              {
                name: 'use',
                op: sh('cat "$LOCKSTEP_INPUTS/shared/file"'),
                after: ['shared'],
                target,
              },
            ],
          },
        }),
      ),
    )
    for (const o of orders) expect((await cluster.finished(o.orderId)).state).toBe('succeeded')
    expect(readFileSync(runs, 'utf8')).toBe('ran\n')
    const holders = (await c.locate('cache:shared@1')).holders.map((h) => h.target).sort()
    expect(holders).toEqual(['w1', 'w2', 'w3'])
    for (const o of orders) {
      const dir = await cluster.product(o.orderId, 'use')
      expect(readFileSync(join(dir, 'stdout'), 'utf8')).toBe('data')
    }
  }, 30_000)

  it('answers bad input with a clear 4xx and stores nothing', async () => {
    await cluster.server()
    const ana = cluster.client()
    const refused = async (p: Promise<unknown>) => {
      const e = await p.then(
        () => undefined,
        (err: unknown) => err as LockstepError,
      )
      expect(e).toBeInstanceOf(LockstepError)
      return e!
    }
    const yaml = await refused(ana.submitDocument('name: p\njobs:\n  - name: a\n   op: x\n'))
    expect([yaml.status, yaml.message]).toEqual([400, expect.stringMatching(/^body:4:\d+: /)])
    const cycle = await refused(
      ana.submit({
        packet: {
          name: 'p',
          jobs: [
            { name: 'a', op: sh('true'), after: ['b'] },
            { name: 'b', op: sh('true'), after: ['a'] },
          ],
        },
      }),
    )
    expect([cycle.status, cycle.code, cycle.message]).toEqual([
      400,
      'CYCLE_IN_GRAPH',
      'jobs[0].after: cycle: a → b → a',
    ])
    const project = await refused(
      ana.submit({
        artifact: { project: 'genomes', steps: [{ kind: 'parallel', op: sh('true') }] },
      }),
    )
    expect([project.status, project.code]).toEqual([422, 'NO_WORKER_FOR_PROJECT'])
    const big = await refused(
      ana.submit({ packet: { name: 'p', description: 'x'.repeat(17 * 1024 * 1024), jobs: [] } }),
    )
    expect([big.status, big.code]).toEqual([413, 'PAYLOAD_TOO_LARGE'])
    const none = await refused(new LockstepClient({ url: cluster.url }).orders())
    expect([none.status, none.code]).toEqual([401, 'UNAUTHORIZED'])
    const wrong = await refused(
      new LockstepClient({ url: cluster.url, token: 'not-a-token' }).orders(),
    )
    expect([wrong.status, wrong.code]).toEqual([401, 'UNAUTHORIZED'])
    expect(await ana.orders()).toEqual([])
    const order = await ana.submit({ packet: { name: 'p', jobs: [{ name: 'a', op: sh('true') }] } })
    const bob = new LockstepClient({ url: cluster.url, token: BOB })
    const cancel = await refused(bob.cancelOrder(order.orderId))
    expect([cancel.status, cancel.code]).toEqual([404, 'ORDER_NOT_FOUND'])
    expect((await ana.order(order.orderId)).fulfilment.state).toBe('running')
  }, 30_000)
  it('kills the whole process group of a cancelled job on its worker', async () => {
    await cluster.server()
    await cluster.worker('w1')
    const c = cluster.client()
    const file = join(cluster.dir, 'pid')
    const order = await c.submit({
      packet: { name: 'hold', jobs: [{ name: 'hold', op: holdsASleep(file) }] },
    })
    const pid = await pidWritten(file)
    strays.push(pid)
    expect(alive(pid)).toBe(true)
    expect((await c.cancelOrder(order.orderId)).state).toBe('cancelled')
    expect(await ended(pid), `sleep ${pid} outlived its cancelled job`).toBe(true)
    const [job] = await c.jobs(order.orderId)
    expect((await c.job(job!.id)).attempts.map((a) => [a.target, a.state])).toEqual([
      ['w1', 'cancelled'],
    ])
  }, 60_000)

  it('kills the whole process group of a job that ran past its timeout', async () => {
    await cluster.server()
    await cluster.worker('w1')
    const c = cluster.client()
    const file = join(cluster.dir, 'pid')
    const order = await c.submit({
      packet: { name: 'hold', jobs: [{ name: 'hold', op: holdsASleep(file), timeoutMs: 3000 }] },
    })
    const pid = await pidWritten(file)
    strays.push(pid)
    const f = await cluster.finished(order.orderId)
    expect([f.state, f.reason]).toEqual(['failed', expect.stringMatching(/timeout/)])
    expect(await ended(pid), `sleep ${pid} outlived its timed-out job`).toBe(true)
  }, 60_000)

  it('fetches an input through the scheduler when the worker holding it cannot be reached', async () => {
    await cluster.server()
    const w1 = await cluster.worker('w1')
    // w2 cannot connect to w1; both reach the scheduler, which reaches w1.
    await cluster.worker('w2', [], {
      node: ['--import', 'tsx', '--import', pathToFileURL(resolve('test/e2e/unreachable.ts')).href],
      env: { LOCKSTEP_TEST_UNREACHABLE: new URL(w1.url).host },
    })
    const c = cluster.client()
    await expectPassed(cluster, await c.submit({ packet: makeThenRead }))
  }, 30_000)
})
