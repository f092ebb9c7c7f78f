/**
 * The push loop over a driver of the test's own: it runs the engine's scheduling cycle for a
 * push target, never hands the driver more attempts than the availability it reports, reports
 * each outcome through the service, and passes stops on to the driver.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { JobResult } from '../../src/core/model.ts'
import type { Assignment, Stop } from '../../src/core/protocol.ts'
import { SchedulerService } from '../../src/service/service.ts'
import { SqliteStore } from '../../src/store/sqlite-store.ts'
import { PushLoop } from '../../src/targets/push-loop.ts'
import type { AttemptOutcome, TargetDriver } from '../../src/targets/target-driver.ts'

/** A cluster of `slots` that finishes an attempt when the test says so. */
class HeldDriver implements TargetDriver {
  readonly id = 'cluster-a'
  readonly registration = { id: 'cluster-a', kind: 'kubernetes' as const, slots: 2 }
  readonly started: Assignment[] = []
  readonly stopped: Stop[] = []
  /** The attempts whose outcomes the loop said were stored, as `jobId#attempt`. */
  readonly recordedKeys: string[] = []
  most = 0
  /** Called after every change the driver sees. */
  onChange: () => void = () => {}
  private readonly running = new Map<string, (outcome: AttemptOutcome) => void>()

  availability(): number {
    return this.registration.slots - this.running.size
  }

  start(a: Assignment): Promise<AttemptOutcome> {
    this.started.push(a)
    return new Promise((resolve) => {
      this.running.set(a.jobId, resolve)
      this.most = Math.max(this.most, this.running.size)
      this.onChange()
    })
  }

  finish(jobId: string, result: JobResult = { ok: true }): void {
    const resolve = this.running.get(jobId)!
    this.running.delete(jobId)
    resolve({ result })
  }

  get runningIds(): string[] {
    return [...this.running.keys()]
  }

  stop(stop: Stop): void {
    this.stopped.push(stop)
    this.onChange()
    if (this.running.has(stop.jobId)) {
      this.finish(stop.jobId, { ok: false, reason: 'cancelled' })
    }
  }

  recorded(a: { jobId: string; attempt: number }): void {
    this.recordedKeys.push(`${a.jobId}#${a.attempt}`)
    this.onChange()
  }

  close(): Promise<void> {
    for (const id of this.runningIds) this.finish(id, { ok: false, reason: 'closed' })
    return Promise.resolve()
  }
}

let dir: string
let service: SchedulerService
let driver: HeldDriver
let loop: PushLoop

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'lockstep-push-'))
  service = await SchedulerService.start({
    store: new SqliteStore({ path: join(dir, 'db') }),
    engine: { cacheTimeoutMs: 0, depsTimeoutMs: 0 },
  })
  driver = new HeldDriver()
  loop = new PushLoop(service, [driver], { idleMs: 20 })
  await loop.start()
})

afterEach(async () => {
  await loop.close()
  await service.close()
  rmSync(dir, { recursive: true, force: true })
})

/** Resolves once `check` holds, looking again after each stored event and each driver change. */
function until(check: () => boolean): Promise<void> {
  if (check()) return Promise.resolve()
  return new Promise((resolve) => {
    const look = () => {
      if (!check()) return
      off()
      driver.onChange = () => {}
      resolve()
    }
    const off = service.on(look)
    driver.onChange = look
  })
}

const op = { image: 'busybox', command: ['true'] }

describe('the push loop', () => {
  it('fills a push target up to its availability and no further, and reports outcomes', async () => {
    const order = await service.submitPacket(
      { name: 'p', jobs: ['a', 'b', 'c', 'd', 'e'].map((name) => ({ name, op })) },
      {},
      'ana',
    )
    await until(() => driver.runningIds.length === 2)
    for (let done = 0; done < 5; done++) {
      await until(() => driver.runningIds.length > 0)
      driver.finish(driver.runningIds[0]!)
    }
    await until(() => driver.started.length === 5)
    await until(() => driver.runningIds.length === 0)
    await service.durable()
    const f = await service.fulfilment(order.orderId)
    expect(f.counts.succeeded).toBe(5)
    expect(driver.most).toBe(2)
    // Each outcome is said to be stored once it is, and only then.
    await until(() => driver.recordedKeys.length === 5)
    expect(driver.recordedKeys.sort()).toEqual(driver.started.map((a) => `${a.jobId}#1`).sort())
    expect(service.targets().find((t) => t.target.id === 'cluster-a')?.target.kind).toBe(
      'kubernetes',
    )
  })

  it('passes a cancellation on to the driver as a stop', async () => {
    const order = await service.submitPacket({ name: 'p', jobs: [{ name: 'a', op }] }, {}, 'ana')
    await until(() => driver.runningIds.length === 1)
    const [a] = driver.started
    await service.cancelOrder(order.orderId, 'changed my mind')
    await until(() => driver.stopped.length === 1)
    expect(driver.stopped).toEqual([{ jobId: a!.jobId, attempt: 1, reason: 'order cancelled' }])
    expect((await service.fulfilment(order.orderId)).state).toBe('cancelled')
  })
})

/** A held driver that, after a restart, still runs the attempts of `kept` and no other. */
class ResumingDriver extends HeldDriver {
  readonly resumed: { jobId: string; attempt: number }[] = []

  constructor(private readonly kept: ReadonlySet<string>) {
    super()
  }

  resume(attempts: readonly { jobId: string; attempt: number }[]): Promise<AttemptOutcome>[] {
    this.resumed.push(...attempts)
    return attempts.map((a) =>
      this.kept.has(a.jobId)
        ? this.start({ jobId: a.jobId, attempt: a.attempt } as Assignment)
        : Promise.resolve({ result: { ok: false, reason: 'pod-deleted' } }),
    )
  }
}

describe('the push loop after a restart', () => {
  it('hands a resuming driver the attempts it ran, and follows their outcomes without running them again', async () => {
    const order = await service.submitPacket(
      {
        name: 'p',
        failure: { attempts: 2, backoffMs: 0 },
        jobs: [
          { name: 'kept', op },
          { name: 'gone', op },
        ],
      },
      {},
      'ana',
    )
    await until(() => driver.runningIds.length === 2)
    const byName = new Map(driver.started.map((a) => [a.name, a.jobId]))
    // The scheduler dies with both attempts running; the cluster keeps one Pod of the two.
    await loop.close()
    service.abandon()
    // As a killed process's would, its hold on the store goes with it.
    await service.store.close()
    service = await SchedulerService.start({
      store: new SqliteStore({ path: join(dir, 'db') }),
      engine: { cacheTimeoutMs: 0, depsTimeoutMs: 0 },
    })
    const resuming = new ResumingDriver(new Set([byName.get('kept')!]))
    driver = resuming
    loop = new PushLoop(service, [resuming], { idleMs: 20 })
    await loop.start()
    expect(resuming.resumed.map((a) => a.jobId).sort()).toEqual([...byName.values()].sort())
    // The lost one is tried again (attempt 2); the kept one is not started again.
    await until(() => resuming.started.some((a) => a.jobId === byName.get('gone')))
    expect(resuming.started.filter((a) => a.name !== undefined)).toEqual([
      expect.objectContaining({ jobId: byName.get('gone'), attempt: 2 }),
    ])
    for (const id of [...byName.values()]) {
      await until(() => resuming.runningIds.includes(id))
      resuming.finish(id)
    }
    await until(() => resuming.runningIds.length === 0)
    await service.durable()
    expect((await service.fulfilment(order.orderId)).counts.succeeded).toBe(2)
    const kept = await service.attempts(byName.get('kept')!)
    expect(kept.map((a) => [a.attempt, a.state])).toEqual([[1, 'succeeded']])
    const gone = await service.attempts(byName.get('gone')!)
    expect(gone.map((a) => [a.attempt, a.state, a.reason])).toEqual([
      [1, 'failed', 'pod-deleted'],
      [2, 'succeeded', undefined],
    ])
  })
})
