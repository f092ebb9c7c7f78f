/**
 * `lockstep backup FILE` copies the SQLite store while the scheduler runs; a scheduler started on
 * the copy has every order that was acknowledged before it. A PostgreSQL store is pointed to
 * pg_dump.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest'
import { main } from '../../src/cli/main.ts'
import { Cluster, sh } from '../e2e/cluster.ts'
import { checkLeaks } from '../leaks.ts'

const opened = checkLeaks()
const clusters: Cluster[] = []
const dir = mkdtempSync(join(tmpdir(), 'lockstep-backup-'))

afterEach(async () => {
  vi.unstubAllEnvs()
  for (const c of clusters.splice(0)) await c.stopAll()
})

describe('lockstep backup', () => {
  it('copies the store of a running scheduler, and a scheduler started on the copy has its orders', async () => {
    const first = new Cluster({ databaseUrl: '', opened })
    clusters.push(first)
    await first.server()
    await first.worker('w1')
    const order = await first
      .client()
      .submit({ packet: { name: 'p', jobs: [{ name: 'a', op: sh('echo a') }] } })
    expect((await first.finished(order.orderId)).state).toBe('succeeded')

    vi.stubEnv('LOCKSTEP_DATABASE_URL', '')
    const to = join(dir, 'copy.db')
    const lines: string[] = []
    const backup = (...args: string[]) => main(['backup', ...args], (l) => lines.push(l))
    expect(await backup(to, '--data-dir', join(first.dir, 'scheduler'))).toBe(0)
    expect(lines[0]).toMatch(/^backed up .*lockstep\.db to .*copy\.db \(\d+ pages\)$/)
    // A second backup never writes over a file.
    expect(await backup(to, '--data-dir', join(first.dir, 'scheduler'))).toBe(1)
    await first.stopAll()

    const restored = new Cluster({ databaseUrl: to, opened })
    clusters.push(restored)
    await restored.server()
    const { fulfilment } = await restored.client().order(order.orderId)
    expect(fulfilment).toMatchObject({ state: 'succeeded', total: 1 })
  }, 60_000)

  it('points a PostgreSQL store to pg_dump, naming its schema', async () => {
    vi.stubEnv('LOCKSTEP_DATABASE_URL', 'postgres://lockstep@db/lockstep?schema=prod')
    const errors: string[] = []
    const write = vi.spyOn(process.stderr, 'write').mockImplementation((text) => {
      errors.push(String(text))
      return true
    })
    try {
      expect(await main(['backup', join(dir, 'x.db')], () => {})).toBe(1)
    } finally {
      write.mockRestore()
    }
    expect(errors.join('')).toContain('back it up with pg_dump --schema=prod')
  })
})

afterAll(() => rmSync(dir, { recursive: true, force: true }))
