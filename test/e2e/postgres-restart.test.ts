/**
 * A real PostgreSQL restart under a real scheduler process. The shared server must never be
 * stopped, so this test makes a private cluster (initdb, pg_ctl) on a free port in a temp dir,
 * run as the `postgres` user when the test runs as root (PostgreSQL refuses root). The
 * scheduler rides out a fast shutdown (57P01) and carries on once the cluster is back.
 * Skipped only where no PostgreSQL binaries are installed.
 */
import { execFileSync } from 'node:child_process'
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { checkLeaks } from '../leaks.ts'
import { Cluster, WORKBENCH, sh } from './cluster.ts'

const opened = checkLeaks()

const bin = (() => {
  const root = '/usr/lib/postgresql'
  if (!existsSync(root)) return undefined
  const version = readdirSync(root).sort().at(-1)
  return version === undefined ? undefined : join(root, version, 'bin')
})()

/** Runs a PostgreSQL program, as `postgres` when we are root. */
function pgRun(program: string, args: string[]): void {
  const path = join(bin!, program)
  if (process.getuid?.() === 0) {
    execFileSync('runuser', ['-u', 'postgres', '--', path, ...args], { stdio: 'ignore' })
  } else {
    execFileSync(path, args, { stdio: 'ignore' })
  }
}

async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

describe.skipIf(bin === undefined)('a PostgreSQL restart', () => {
  let dir: string
  let cluster: Cluster | undefined
  let running = false

  afterEach(async () => {
    await cluster?.stopAll()
    if (running) pgRun('pg_ctl', ['-D', join(dir, 'data'), 'stop', '-m', 'immediate'])
    rmSync(dir, { recursive: true, force: true })
  })

  it('is ridden out by a scheduler, which carries on when the database is back', async () => {
    dir = mkdtempSync(join(tmpdir(), 'lockstep-pg-'))
    if (process.getuid?.() === 0) chownSync(dir, Number(execFileSync('id', ['-u', 'postgres'])), 0)
    const port = await freePort()
    pgRun('initdb', ['-D', join(dir, 'data'), '-A', 'trust', '-U', 'postgres'])
    const start = () => {
      pgRun('pg_ctl', [
        '-D',
        join(dir, 'data'),
        '-o',
        `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1`,
        '-l',
        join(dir, 'log'),
        '-w',
        'start',
      ])
      running = true
    }
    start()
    cluster = new Cluster({
      databaseUrl: `postgres://postgres@127.0.0.1:${port}/postgres?connect_timeout=2`,
      opened,
    })
    const server = await cluster.server()
    const submit = (name: string) =>
      fetch(`${cluster!.url}/v1/orders`, {
        method: 'POST',
        headers: { authorization: `Bearer ${WORKBENCH}`, 'content-type': 'application/json' },
        body: JSON.stringify({ packet: { name, jobs: [{ name: 'a', op: sh('true') }] } }),
      })
    const ready = async () => (await fetch(`${cluster!.url}/readyz`)).status
    const before = (await (await submit('before')).json()) as { orderId: string }

    pgRun('pg_ctl', ['-D', join(dir, 'data'), 'stop', '-m', 'fast'])
    running = false
    await expect.poll(ready, { timeout: 10_000 }).toBe(503)
    const during = await submit('during')
    expect(during.status).toBe(503)
    expect(during.headers.get('retry-after')).toMatch(/^\d+$/)
    expect(
      (
        await fetch(`${cluster.url}/v1/orders/${before.orderId}`, {
          headers: { authorization: `Bearer ${WORKBENCH}` },
        })
      ).status,
    ).toBe(200)

    start()
    await expect.poll(ready, { timeout: 15_000 }).toBe(200)
    expect((await submit('after')).status).toBe(201)
    expect(server.child.exitCode).toBe(null)
    const order = await cluster.client().order(before.orderId)
    expect(order.fulfilment.state).toBe('running')
  })
})
