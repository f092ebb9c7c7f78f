/**
 * A listener that throws on an event (a stream whose client has gone, a driver with a bug) does
 * not take the service down: the commit stands, the other listeners hear every event, and the
 * next write is taken.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { EngineEvent } from '../../src/core/engine/events.ts'
import { SchedulerService } from '../../src/service/service.ts'
import { SqliteStore } from '../../src/store/sqlite-store.ts'

let dir: string | undefined
let service: SchedulerService | undefined

afterEach(async () => {
  await service?.close()
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
})

describe('listeners', () => {
  it('that throw lose their event, and nothing else', async () => {
    dir = mkdtempSync(join(tmpdir(), 'lockstep-listeners-'))
    const failures: { error: unknown; type: string }[] = []
    service = await SchedulerService.start({
      store: new SqliteStore({ path: join(dir, 'db') }),
      onListenerError: (error, event) => failures.push({ error, type: event.type }),
    })
    const heard: EngineEvent[] = []
    service.on(() => {
      throw new Error('the client went away')
    })
    service.on((e) => heard.push(e))
    const packet = { name: 'p', jobs: [{ name: 'a', op: { builtin: 'noop' } }] }
    const first = await service.submitPacket(packet, {}, 'ana')
    const second = await service.submitPacket(packet, {}, 'ana')
    await service.durable()
    const ordered = heard.filter((e) => e.type === 'order:submitted').map((e) => e.order.id)
    expect(ordered).toEqual([first.orderId, second.orderId])
    expect(failures.length).toBe(heard.length)
    expect(failures[0]!.error).toEqual(new Error('the client went away'))
    expect((await service.fulfilment(second.orderId)).state).toBe('running')
  })
})
