/**
 * The service rides out a store that fails for a while, on real SQLite faults: another
 * connection holding the write lock (SQLITE_BUSY), and a disk that fills up (SQLITE_FULL, on a
 * 4 MB tmpfs when this process may mount one). Writes are refused with STORE_UNAVAILABLE and a
 * Retry-After, reads are served from memory, nothing is acknowledged that is not stored, the
 * failed batch lands once the store is back, and the service carries on.
 */
import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterEach, describe, expect, it } from 'vitest'
import { StoreUnavailableError } from '../../src/core/errors.ts'
import { FakeClock } from '../../src/core/clock.ts'
import { SchedulerService } from '../../src/service/service.ts'
import type { SchedulerServiceOptions } from '../../src/service/service.ts'
import { SqliteStore } from '../../src/store/sqlite-store.ts'
import { checkLeaks } from '../leaks.ts'

const op = { builtin: 'noop' }
const opened = checkLeaks()

/** Whether this process may mount a tmpfs (root, with the right to mount). */
function mountTmpfs(dir: string, size: string): boolean {
  if (process.getuid?.() !== 0) return false
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}
const probe = mkdtempSync(join(tmpdir(), 'lockstep-mount-'))
const canMount = mountTmpfs(probe, '1m')
if (canMount) execFileSync('umount', [probe])
rmSync(probe, { recursive: true, force: true })

describe('a store that fails for a while', () => {
  let dir: string
  const cleanups: (() => Promise<void> | void)[] = []

  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c()
  })

  async function start(
    path: string,
    options: Pick<SchedulerServiceOptions, 'maxPending' | 'clock' | 'engine'> = {},
  ) {
    const service = await SchedulerService.start({
      store: new SqliteStore({ path, synchronous: 'normal', busyTimeoutMs: 20 }),
      onStoreFault: () => {},
      ...options,
    })
    opened.service(service, options.clock instanceof FakeClock ? { clock: options.clock } : {})
    cleanups.push(() => service.close())
    return service
  }

  const submit = (service: SchedulerService, name: string, jobs = 1) =>
    service.submitPacket(
      { name, jobs: Array.from({ length: jobs }, (_, i) => ({ name: `j${i}`, op })) },
      {},
      'ana',
    )

  it('refuses writes while another connection holds the write lock, and carries on after', async () => {
    dir = mkdtempSync(join(tmpdir(), 'lockstep-busy-'))
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
    const path = join(dir, 'lockstep.db')
    const service = await start(path)
    const before = await submit(service, 'before')

    const other = new Database(path)
    other.exec('BEGIN IMMEDIATE')
    const failed = await submit(service, 'during').catch((e: unknown) => e)
    expect(failed).toBeInstanceOf(StoreUnavailableError)
    expect(failed).toMatchObject({ code: 'STORE_UNAVAILABLE', status: 503 })
    expect((failed as StoreUnavailableError).retryAfterS).toBeGreaterThanOrEqual(1)
    expect((failed as Error).message).toMatch(/SQLITE_BUSY/)
    expect(service.storeStatus()).toMatchObject({ ready: false, fault: /SQLITE_BUSY/ })
    // Refused at once now, without touching the store; reads come from memory.
    await expect(submit(service, 'refused')).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' })
    expect(await service.fulfilment(before.orderId)).toMatchObject({ state: 'running' })

    other.exec('COMMIT')
    other.close()
    await expect.poll(() => service.storeStatus().ready, { timeout: 10_000 }).toBe(true)
    const after = await submit(service, 'after')
    // What was acknowledged is stored; the refused write never happened; the write that failed
    // was kept and landed, unacknowledged, before anything after it.
    const audit = new Database(path, { readonly: true })
    try {
      const names = audit
        .prepare('SELECT p.name FROM orders o JOIN packets p ON p.id = o.source_id ORDER BY o.id')
        .pluck()
        .all()
      expect(names).toEqual(['before', 'during', 'after'])
    } finally {
      audit.close()
    }
    expect(after.state).toBe('running')
  })

  it('loses no worker to an outage: a refused heartbeat still renews its lease', async () => {
    dir = mkdtempSync(join(tmpdir(), 'lockstep-lease-'))
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
    const path = join(dir, 'lockstep.db')
    const clock = new FakeClock()
    const service = await start(path, { clock, engine: { leaseMs: 1000 } })
    await service.registerTarget({ id: 'w1', slots: 1 })
    const other = new Database(path)
    other.exec('BEGIN IMMEDIATE')
    // A write while the lock is held fails: the store is in its fault from here on.
    await expect(service.registerTarget({ id: 'w2', slots: 1 })).rejects.toMatchObject({
      code: 'STORE_UNAVAILABLE',
    })
    for (let i = 0; i < 5; i++) {
      clock.advance(600)
      await expect(service.heartbeat('w1', {})).rejects.toMatchObject({
        code: 'STORE_UNAVAILABLE',
      })
    }
    other.exec('COMMIT')
    other.close()
    await expect.poll(() => service.storeStatus().ready, { timeout: 10_000 }).toBe(true)
    expect(service.targets().find((t) => t.target.id === 'w1')).toMatchObject({ live: true })
    expect(await service.heartbeat('w1', {})).toMatchObject({ assignments: [] })
  })

  it('refuses new writes beyond the cap on changes waiting for the store', async () => {
    dir = mkdtempSync(join(tmpdir(), 'lockstep-cap-'))
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
    const service = await start(join(dir, 'lockstep.db'), { maxPending: 2 })
    const outcomes = await Promise.allSettled([
      submit(service, 'a'),
      submit(service, 'b'),
      submit(service, 'c'),
    ])
    expect(outcomes[0].status).toBe('fulfilled')
    const refused = outcomes.filter((o) => o.status === 'rejected')
    expect(refused.length).toBeGreaterThan(0)
    for (const r of refused) {
      expect(r.reason).toMatchObject({ code: 'STORE_UNAVAILABLE' })
    }
    // Once the first commit drains them, writes are taken again.
    await submit(service, 'd')
    expect(service.storeStatus()).toMatchObject({ ready: true, pending: 0 })
  })

  it.skipIf(!canMount)('rides out a full disk (SQLITE_FULL) on a 4 MB tmpfs', async () => {
    dir = mkdtempSync(join(tmpdir(), 'lockstep-full-'))
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
    const disk = join(dir, 'disk')
    mkdirSync(disk)
    expect(mountTmpfs(disk, '4m')).toBe(true)
    cleanups.push(() => void execFileSync('umount', ['-l', disk]))
    const service = await start(join(disk, 'lockstep.db'))
    const before = await submit(service, 'before')
    // Fill the disk to the last block.
    const filler = join(disk, 'filler')
    let size = 0
    for (const chunk of [1 << 20, 1 << 16, 1 << 12]) {
      for (;;) {
        try {
          writeFileSync(filler, Buffer.alloc(size + chunk))
          size += chunk
        } catch {
          break
        }
      }
    }
    writeFileSync(filler, Buffer.alloc(size))
    const failed = await submit(service, 'during', 500).catch((e: unknown) => e)
    expect(failed).toMatchObject({ code: 'STORE_UNAVAILABLE' })
    expect((failed as Error).message).toMatch(/SQLITE_FULL|SQLITE_IOERR/)
    expect(service.storeStatus().ready).toBe(false)
    expect(await service.fulfilment(before.orderId)).toMatchObject({ state: 'running' })

    rmSync(filler)
    await expect.poll(() => service.storeStatus().ready, { timeout: 15_000 }).toBe(true)
    const after = await submit(service, 'after')
    const orders = await service.listOrders(10)
    expect(orders.map((o) => o.orderId).sort()).toContain(after.orderId)
    expect(orders).toHaveLength(3)
  })
})
