/**
 * The initiator runs in the scheduler process: without the operator's opt-in it runs builtins
 * only, and an `exec` job strict to it waits with a reason that says so; with the opt-in it runs,
 * and its environment holds none of the scheduler's secrets.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { describeWaitReason } from '../../src/core/dispatch/scheduler.ts'
import type { WaitReason } from '../../src/core/dispatch/scheduler.ts'
import { SchedulerService } from '../../src/service/service.ts'
import { SqliteStore } from '../../src/store/sqlite-store.ts'
import { InitiatorDriver, initiatorRuns } from '../../src/targets/initiator.ts'
import { PushLoop } from '../../src/targets/push-loop.ts'
import { environmentVariables } from '../environment-variables.ts'

const SECRETS = {
  LOCKSTEP_TOKENS: 'admin:ana:admin-secret-1,worker:fleet:worker-secret-1',
  LOCKSTEP_DATABASE_URL: 'postgres://lockstep:db-secret-1@localhost/lockstep',
  LOCKSTEP_TOKEN: 'worker-secret-2',
}
const secrets = environmentVariables(SECRETS)

let dir: string
let service: SchedulerService
let loop: PushLoop

/** A scheduler with its initiator, as `lockstep server` wires them, with or without the opt-in. */
async function start(exec: boolean): Promise<void> {
  service = await SchedulerService.start({
    store: new SqliteStore({ path: join(dir, 'db') }),
    engine: { cacheTimeoutMs: 0, depsTimeoutMs: 0, initiatorRuns: initiatorRuns({ exec }) },
  })
  seen = []
  service.on((e) => {
    const about = e as unknown as { jobId?: string; orderId?: string }
    seen.push(`${e.type} ${about.jobId ?? about.orderId}`)
    look()
  })
  const initiator = new InitiatorDriver(service, { dir: join(dir, 'initiator'), exec })
  await initiator.open()
  loop = new PushLoop(service, [initiator], { idleMs: 20 })
  await loop.start()
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'lockstep-initiator-'))
  secrets.set()
})

afterEach(async () => {
  await loop.close()
  await service.close()
  secrets.restore()
  rmSync(dir, { recursive: true, force: true })
})

/** Every event since the scheduler started, as `type id` (the job's, else the order's). */
let seen: string[] = []
let look: () => void = () => {}

/** Resolves once an event of `type` about `id` has been seen. */
async function event(type: string, id: string): Promise<void> {
  while (!seen.includes(`${type} ${id}`)) await new Promise<void>((r) => (look = r))
}

/** An order with an exec job and a builtin job, both strict to the initiator. */
async function submit(): Promise<{ orderId: string; dump: string; count: string }> {
  const order = await service.submitPacket(
    {
      name: 'in-the-scheduler',
      jobs: [
        {
          name: 'dump',
          op: { exec: ['sh', '-c', 'env > "$DUMP"'], env: { DUMP: join(dir, 'env.txt') } },
          target: 'initiator',
        },
        { name: 'noop', op: { builtin: 'noop' }, target: 'initiator' },
      ],
    },
    {},
    'ana',
  )
  const jobs = await service.jobs(order.orderId)
  return {
    orderId: order.orderId,
    dump: jobs.find((j) => j.name === 'dump')!.id,
    count: jobs.find((j) => j.name === 'noop')!.id,
  }
}

describe('the initiator', () => {
  it('runs builtins only by default: an exec job waits with a reason that says so, and never runs', async () => {
    await start(false)
    const { dump, count } = await submit()
    // The exec job ranks first (same priority, older), so the cycle that started the builtin
    // had it on top of the initiator's queues and passed it by.
    await event('job:succeeded', count)
    const job = await service.jobDetail(dump)
    expect(job.job.state).toBe('ready')
    expect(job.attempts).toEqual([])
    expect(existsSync(join(dir, 'env.txt'))).toBe(false)
    const wait = job.wait as WaitReason
    expect(wait).toEqual({
      kind: 'no-eligible-target',
      target: 'initiator',
      op: 'exec',
      refusal: 'the initiator runs builtins only; start the server with --initiator-exec',
      // The API says it in the same words as the one function that words it.
      text: describeWaitReason(wait),
    })
    expect(describeWaitReason(wait)).toBe(
      'target initiator does not run exec jobs (the initiator runs builtins only; start the server with --initiator-exec)',
    )
  })

  it('runs exec jobs when the operator opts in, with none of the scheduler’s secrets', async () => {
    await start(true)
    const { orderId } = await submit()
    await event('order:succeeded', orderId)
    expect((await service.fulfilment(orderId)).state).toBe('succeeded')
    const env = readFileSync(join(dir, 'env.txt'), 'utf8')
    for (const secret of Object.values(SECRETS)) expect(env).not.toContain(secret)
    expect(env).not.toMatch(/^LOCKSTEP_(TOKENS?|DATABASE_URL)=/m)
    expect(env).toMatch(/^LOCKSTEP_JOB_NAME=dump$/m)
  })

  it('refuses an exec job handed to it anyway, with reason refused', async () => {
    await start(false)
    const initiator = new InitiatorDriver(service, { dir: join(dir, 'other') })
    const outcome = await initiator.start({
      orderId: 'o',
      jobId: 'j',
      productId: 'j',
      name: 'dump',
      attempt: 1,
      target: 'initiator',
      op: { exec: ['sh', '-c', 'env > "$DUMP"'], env: { DUMP: join(dir, 'env.txt') } },
      resources: [],
      timeoutMs: undefined,
      inputs: [],
    })
    expect(outcome.result).toMatchObject({ ok: false, reason: 'refused' })
    expect(existsSync(join(dir, 'env.txt'))).toBe(false)
  })
})
