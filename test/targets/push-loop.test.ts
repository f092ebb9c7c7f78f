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
