/**
 * One scheduler per store, on both backends: a second holder is refused with the first named,
 * a holder that closes or is SIGKILLed lets go at once, and (PostgreSQL) a holding session that
 * drops is noticed, and taken again by the next commit.
 */
import { spawn } from 'node:child_process'
import { hostname } from 'node:os'
import pg from 'pg'
import { afterEach, describe, expect, it } from 'vitest'
import { LockstepError } from '../../src/core/errors.ts'
import { emptyBatch } from '../../src/store/store.ts'
import type { Store } from '../../src/store/store.ts'
import { checkLeaks } from '../leaks.ts'
import { backends, pgUrl, postgresBackend } from './backends.ts'
import type { Backend } from './backends.ts'

const opened = checkLeaks()

/** A child process that holds the store until killed; resolves once it holds it. */
async function holderProcess(url: string) {
  const script = `
    import { openStore } from './src/store/open-store.ts'
    const store = openStore(process.env.STORE_URL)
    await store.hold()
    process.stdout.write('held\\n')
    setInterval(() => {}, 1000)
  `
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    env: { ...process.env, STORE_URL: url },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  opened.child(child, `holder (pid ${child.pid})`)
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      if (d.toString().includes('held')) resolve()
    })
    child.once('exit', (code) => reject(new Error(`the holder exited with ${code}`)))
  })
  return { pid: child.pid!, kill: () => (child.kill('SIGKILL'), exited) }
}

describe.each(backends)('holding the store (%s)', (_name, make) => {
  let backend: Backend
  const stores: Store[] = []
  const open = () => {
    const s = backend.open()
    stores.push(s)
    return s
  }

  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close()
    await backend.destroy()
  })

  it('refuses a second holder, naming the first: pid, host and since when', async () => {
    backend = make('hold-second')
    const first = open()
    await first.hold()
    await first.migrate()
    const second = open()
    const refusal = await second.hold().catch((e: unknown) => e)
    expect(refusal).toBeInstanceOf(LockstepError)
    expect(refusal).toMatchObject({ code: 'STORE_HELD', status: 409 })
    expect((refusal as Error).message).toContain(`process ${process.pid} on ${hostname()} since 20`)
    // The refused handle let go of nothing: a third is refused as well.
    await expect(open().hold()).rejects.toMatchObject({ code: 'STORE_HELD' })
    // Reads of a store held by another handle still work: audits and backups read it.
    expect(await second.listOrders(10)).toEqual([])
  })

  it('lets go on close: the next holder takes it', async () => {
    backend = make('hold-close')
    const first = open()
    await first.hold()
    await first.close()
    const second = open()
    await second.hold()
    await second.migrate()
    await second.commit(emptyBatch())
  })

  it('a holder killed with SIGKILL blocks no restart', async () => {
    backend = make('hold-kill')
    await backend.open().close()
    const holder = await holderProcess(backend.url)
    const refusal = await open()
      .hold()
      .catch((e: unknown) => e)
    expect(refusal).toMatchObject({ code: 'STORE_HELD' })
    expect((refusal as Error).message).toContain(`process ${holder.pid} on ${hostname()}`)
    await holder.kill()
    const next = open()
    await next.hold()
    await next.migrate()
    await next.commit(emptyBatch())
  })

  it('writes a batch tried again after an unknown outcome only once', async () => {
    backend = make('hold-token')
    const s = open()
    await s.hold()
    await s.migrate()
    const batch = { ...emptyBatch(), token: 'b1' }
    batch.events = [{ seq: 1, at: 1, type: 'target:registered', body: '{}' }]
    await s.commit(batch)
    await s.commit({ ...batch, retried: true })
    expect(await s.events(0, 10)).toHaveLength(1)
    await s.commit({
      ...batch,
      events: [{ ...batch.events[0]!, seq: 2 }],
      token: 'b2',
      retried: true,
    })
    expect(await s.events(0, 10)).toHaveLength(2)
  })
})

describe('the PostgreSQL session that holds a schema', () => {
  let backend: Backend
  afterEach(async () => {
    await backend.destroy()
  })

  /** Ends this process's holding sessions from outside, as a network cut or a restart would. */
  async function terminateHolders(): Promise<void> {
    const admin = new pg.Client({ connectionString: pgUrl })
    await admin.connect()
    try {
      const { rows } = await admin.query<{ done: boolean }>(
        `SELECT pg_terminate_backend(pid) AS done FROM pg_stat_activity
         WHERE application_name LIKE $1`,
        [`lockstep ${process.pid} %`],
      )
      expect(rows).toEqual([{ done: true }])
    } finally {
      await admin.end()
    }
  }

  it('never writes once another process took the schema while its session was down', async () => {
    backend = postgresBackend('hold-fenced')
    const first = backend.open()
    const second = backend.open()
    try {
      const lost: Error[] = []
      await first.hold({ onLost: (e) => lost.push(e) })
      await first.migrate()
      await terminateHolders()
      await expect.poll(() => lost.length, { timeout: 10_000 }).toBe(1)
      await second.hold()
      const event = { seq: 1, at: 1, type: 'x', body: '{}' }
      await expect(first.commit({ ...emptyBatch(), events: [event] })).rejects.toMatchObject({
        code: 'STORE_HELD',
      })
      expect(await second.events(0, 10)).toEqual([])
    } finally {
      await first.close()
      await second.close()
    }
  })

  it('is noticed when it drops, and taken again by the next commit', async () => {
    backend = postgresBackend('hold-session')
    const store = backend.open()
    try {
      const lost: Error[] = []
      await store.hold({ onLost: (e) => lost.push(e) })
      await store.migrate()
      await terminateHolders()
      await expect.poll(() => lost.length, { timeout: 10_000 }).toBe(1)
      await store.commit({ ...emptyBatch(), events: [{ seq: 1, at: 1, type: 'x', body: '{}' }] })
      expect(await store.events(0, 10)).toHaveLength(1)
    } finally {
      await store.close()
    }
  })
})
