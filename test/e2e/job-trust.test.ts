/**
 * No job near the scheduler's secrets, end to end: the real `lockstep server` and `lockstep
 * worker` processes, both started with Lockstep's secrets in their environment. A job that dumps
 * its environment shows none of them, on a worker or on the initiator; the initiator runs exec
 * jobs only with `--initiator-exec`; a builtin-only worker never gets an exec job.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { describeWaitReason } from '../../src/core/dispatch/scheduler.ts'
import type { ListedJob } from '../../src/client/types.ts'
import type { WaitReason } from '../../src/core/dispatch/scheduler.ts'
import { checkLeaks } from '../leaks.ts'
import { sqliteBackend } from '../store/backends.ts'
import type { Backend } from '../store/backends.ts'
import { BOB, Cluster, WORKBENCH, WORKER } from './cluster.ts'
import { environmentVariables } from '../environment-variables.ts'

const opened = checkLeaks()

/** What the scheduler and the workers hold in their environment (the cluster passes it on). */
const SECRETS = {
  LOCKSTEP_TOKEN: WORKER,
  LOCKSTEP_TOKENS: `admin:ana:${WORKBENCH},worker:fleet:${WORKER},workbench:bob:${BOB}`,
}
const secrets = environmentVariables(SECRETS)

const dumpEnv = { exec: ['sh', '-c', 'env'] }

let backend: Backend
let cluster: Cluster

beforeAll(() => {
  secrets.set()
})

afterAll(() => {
  secrets.restore()
})

beforeEach(() => {
  backend = sqliteBackend()
  cluster = new Cluster({ databaseUrl: backend.url, opened })
})

afterEach(async () => {
  await cluster.stopAll()
  await backend.destroy()
})

/** The stdout of a job's product: here, the environment it ran with. */
async function environmentOf(orderId: string, job: string): Promise<string> {
  return readFileSync(join(await cluster.product(orderId, job), 'stdout'), 'utf8')
}

function expectNoSecret(env: string): void {
  for (const secret of [WORKER, WORKBENCH, BOB]) expect(env).not.toContain(secret)
  expect(env).not.toMatch(/^LOCKSTEP_(TOKENS?|DATABASE_URL)=/m)
  expect(env).toMatch(/^LOCKSTEP_OUT=/m)
}

/** A job as the API lists it. */

/** Waits until the job `name` of an order is as `done` wants it, and returns it. */
async function jobUntil(
  orderId: string,
  name: string,
  done: (job: ListedJob) => boolean,
): Promise<ListedJob> {
  const c = cluster.client()
  const deadline = Date.now() + 20_000
  for (;;) {
    const job = (await c.jobs(orderId)).find((j) => j.name === name)!
    if (done(job)) return job
    if (Date.now() > deadline) throw new Error(`${name} is still ${JSON.stringify(job)}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

/** Waits until a job has a wait reason that `done` accepts, and returns it. */
async function waitReason(
  orderId: string,
  name: string,
  done: (w: WaitReason) => boolean,
): Promise<WaitReason> {
  const job = await jobUntil(
    orderId,
    name,
    (j) => j.wait !== undefined && done(j.wait as WaitReason),
  )
  return job.wait as WaitReason
}

describe('no job near the scheduler’s secrets', () => {
  it('keeps an exec job off a builtin-only worker until one that runs exec comes, and shows it no secret', async () => {
    await cluster.server()
    await cluster.worker('site', ['--allow', 'builtin'])
    const c = cluster.client()
    const order = await c.submit({
      packet: {
        name: 'env',
        jobs: [
          { name: 'dump', op: dumpEnv },
          { name: 'noop', op: { builtin: 'noop' } },
        ],
      },
    })
    const wait = await waitReason(order.orderId, 'dump', (w) => w.kind === 'no-eligible-target')
    expect(describeWaitReason(wait)).toBe('no connected target runs exec jobs')
    // The builtin-only worker is up and working: it ran the builtin job.
    await jobUntil(order.orderId, 'noop', (j) => j.state === 'succeeded')
    const dump = await jobUntil(order.orderId, 'dump', () => true)
    expect(dump.state).toBe('ready')
    expect((await c.job(dump.id)).attempts).toEqual([])

    await cluster.worker('runner')
    expect((await cluster.finished(order.orderId)).state).toBe('succeeded')
    const attempts = (await c.job(dump.id)).attempts
    expect(attempts.map((a) => a.target)).toEqual(['runner'])
    expectNoSecret(await environmentOf(order.orderId, 'dump'))
  }, 60_000)

  it('runs no exec job on the initiator without --initiator-exec: it waits and says why', async () => {
    await cluster.server()
    await cluster.worker('w1', ['--data', 'p=/dev/null'])
    const c = cluster.client()
    const order = await c.submit({
      artifact: {
        project: 'p',
        steps: [
          { kind: 'initialize', op: dumpEnv },
          { kind: 'parallel', op: { builtin: 'noop' } },
        ],
      },
    })
    const [init] = await c.jobs(order.orderId)
    const wait = await waitReason(order.orderId, init!.name, (w) => w.kind === 'no-eligible-target')
    expect(wait).toMatchObject({ kind: 'no-eligible-target', target: 'initiator', op: 'exec' })
    expect(describeWaitReason(wait)).toBe(
      'target initiator does not run exec jobs (the initiator runs builtins only; start the server with --initiator-exec)',
    )
    expect((await c.job(init!.id)).attempts).toEqual([])
  }, 60_000)

  it('runs an exec job on the initiator with --initiator-exec, without the scheduler’s secrets', async () => {
    await cluster.server(['--initiator-exec'])
    await cluster.worker('w1', ['--data', 'p=/dev/null'])
    const c = cluster.client()
    const order = await c.submit({
      packet: { name: 'env', jobs: [{ name: 'dump', op: dumpEnv, target: 'initiator' }] },
    })
    expect((await cluster.finished(order.orderId)).state).toBe('succeeded')
    expectNoSecret(await environmentOf(order.orderId, 'dump'))
  }, 60_000)

  it('remembers across a scheduler restart that a worker runs builtins only', async () => {
    const first = await cluster.server()
    await cluster.worker('site', ['--allow', 'builtin'])
    first.child.kill('SIGKILL')
    await first.exited
    // The store keeps the kinds each target registered with: the restored worker runs no exec.
    await cluster.server()
    const c = cluster.client()
    const order = await c.submit({
      packet: {
        name: 'env',
        jobs: [{ name: 'dump', op: dumpEnv, failure: { attempts: 2, backoffMs: 10 } }],
      },
    })
    const [dump] = await c.jobs(order.orderId)
    await waitReason(order.orderId, 'dump', (w) => w.kind === 'no-eligible-target')
    expect((await c.job(dump!.id)).attempts).toEqual([])
  }, 60_000)
})
