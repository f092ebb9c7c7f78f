/**
 * The group commit around a real SQLite store, where the service's tests cannot place a fault
 * exactly: a fault the store reports between a change and its commit.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { StoreUnavailableError } from '../../src/core/errors.ts'
import { GroupCommit } from '../../src/service/group-commit.ts'
import { SqliteStore } from '../../src/store/sqlite-store.ts'
import { emptyBatch } from '../../src/store/store.ts'
import type { EventRow } from '../../src/store/store.ts'

describe('group commit', () => {
  let dir: string
  let store: SqliteStore
  let commit: GroupCommit

  afterEach(async () => {
    await commit.close()
    await store.close()
    rmSync(dir, { recursive: true, force: true })
  })

  async function open() {
    dir = mkdtempSync(join(tmpdir(), 'lockstep-gc-'))
    store = new SqliteStore({ path: join(dir, 'db'), synchronous: 'normal' })
    await store.migrate()
    let events: EventRow[] = []
    let seq = 0
    commit = new GroupCommit({
      store,
      pending: () => events.length,
      take: () => {
        const batch = { ...emptyBatch(), events }
        events = []
        return batch
      },
      committed: () => {},
      failed: () => {},
      faulted: () => {},
      retryMinMs: 10,
    })
    return (type: string) => {
      events.push({ seq: ++seq, at: 1, type, body: '{}' })
      commit.changed()
    }
  }

  it('a fault reported before a change is committed: the retry stores it and releases its caller', async () => {
    const record = await open()
    record('a')
    const waiting = commit.durable()
    commit.storeFault(new StoreUnavailableError('the session holding the store ended'))
    expect(commit.status.ready).toBe(false)
    expect(() => commit.check()).toThrow(StoreUnavailableError)
    await waiting
    expect(commit.status).toMatchObject({ ready: true, pending: 0 })
    expect((await store.events(0, 10)).map((e) => e.type)).toEqual(['a'])
  })

  it('a fault reported with nothing to commit: an empty batch takes the store again', async () => {
    await open()
    commit.storeFault(new StoreUnavailableError('the session holding the store ended'))
    await expect.poll(() => commit.status.ready).toBe(true)
    expect(await store.events(0, 10)).toEqual([])
  })
})
