/**
 * A worker started while its scheduler is not there yet (or restarting) waits for it, retrying,
 * and registers once it answers; a worker the scheduler refuses (a bad token) stops at once.
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { SchedulerService } from '../../src/service/service.ts'
import { startServer } from '../../src/server/server.ts'
import { SqliteStore } from '../../src/store/sqlite-store.ts'
import { checkLeaks } from '../leaks.ts'
import { freePort } from '../free-port.ts'

const opened = checkLeaks()
const dir = mkdtempSync(join(tmpdir(), 'lockstep-worker-start-'))
const cleanup: (() => Promise<void>)[] = []

afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c()
})

function startWorker(port: number, token: string) {
  const child = spawn(
    process.execPath,
    [
      'bin/lockstep.js',
      'worker',
      '--server',
      `http://127.0.0.1:${port}`,
      '--id',
      'w1',
      '--token',
      token,
      '--cache',
      join(dir, 'w1'),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  )
  opened.child(child, 'lockstep worker')
  let out = ''
  let err = ''
  child.stdout.on('data', (d: Buffer) => (out += d.toString()))
  child.stderr.on('data', (d: Buffer) => (err += d.toString()))
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)))
  cleanup.push(async () => {
    child.kill('SIGKILL')
    await exited
  })
  return { child, out: () => out, err: () => err, exited }
}

async function scheduler(port: number) {
  const service = opened.service(
    await SchedulerService.start({ store: new SqliteStore({ path: join(dir, `db-${port}`) }) }),
  )
  const server = opened.server(
    await startServer({
      service,
      port,
      tokens: [{ role: 'worker', name: 'w1', token: 'worker-token-1' }],
    }),
  )
  cleanup.push(async () => {
    await server.close()
    await service.close()
  })
  return service
}

describe('a worker whose scheduler is not there', () => {
  it('waits for it, and registers once it answers', async () => {
    const port = await freePort()
    const w = startWorker(port, 'worker-token-1')
    await expect
      .poll(() => w.err(), { timeout: 10_000 })
      .toContain('the scheduler is not reachable yet')
    expect(w.child.exitCode).toBeNull()
    const service = await scheduler(port)
    await expect
      .poll(() => w.out(), { timeout: 15_000 })
      .toContain('lockstep worker w1 serving products on')
    expect(service.targets().map((t) => [t.target.id, t.live])).toContainEqual(['w1', true])
  }, 30_000)

  it('stops at once when the scheduler refuses it', async () => {
    const port = await freePort()
    await scheduler(port)
    const w = startWorker(port, 'not-the-token')
    expect(await w.exited).not.toBe(0)
    expect(w.err()).toContain('UNAUTHORIZED')
  }, 30_000)
})

afterAll(() => rmSync(dir, { recursive: true, force: true }))
