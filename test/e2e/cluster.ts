/**
 * Real processes for end-to-end tests: a `lockstep server` and `lockstep worker`s on loopback
 * ports, each a child process that the test can kill, and that `stopAll` always ends.
 */
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { LockstepClient } from '../../src/client/client.ts'
import { unpack } from '../../src/runner/products.ts'

export const WORKBENCH = 'bench-token-123'
export const WORKER = 'worker-token-123'
export const BOB = 'bob-token-12345'
const TOKENS = `admin:ana:${WORKBENCH},worker:fleet:${WORKER},workbench:bob:${BOB}`

export interface Proc {
  child: ChildProcess
  /** The first line it printed to stdout. */
  ready: Promise<string>
  exited: Promise<void>
}

export class Cluster {
  readonly dir = mkdtempSync(join(tmpdir(), 'lockstep-e2e-'))
  private readonly procs = new Set<Proc>()
  url = ''

  private spawn(args: string[]): Proc {
    const child = spawn(process.execPath, ['bin/lockstep.js', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LOCKSTEP_DATABASE_URL: '' },
    })
    let err = ''
    child.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)))
    const ready = new Promise<string>((resolve, reject) => {
      let out = ''
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString()
        const nl = out.indexOf('\n')
        if (nl >= 0) resolve(out.slice(0, nl))
      })
      child.on('exit', (code) => reject(new Error(`lockstep ${args[0]} exited ${code}: ${err}`)))
    })
    ready.catch(() => {})
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()))
    const proc = { child, ready, exited }
    this.procs.add(proc)
    void exited.then(() => this.procs.delete(proc))
    return proc
  }

  /** Starts the scheduler (again, on the same data directory) and learns its URL. */
  async server(extra: string[] = []): Promise<Proc> {
    const port = this.url === '' ? '0' : new URL(this.url).port
    const proc = this.spawn([
      'server',
      '--port',
      port,
      '--tokens',
      TOKENS,
      '--data-dir',
      join(this.dir, 'scheduler'),
      '--allow-download',
      ...extra,
    ])
    const line = await proc.ready
    this.url = /listening on (\S+)/.exec(line)![1]!
    return proc
  }

  async worker(id: string, extra: string[] = []): Promise<Proc> {
    const proc = this.spawn([
      'worker',
      '--server',
      this.url,
      '--token',
      WORKER,
      '--id',
      id,
      '--cache',
      join(this.dir, id),
      ...extra,
    ])
    await proc.ready
    return proc
  }

  client(): LockstepClient {
    return new LockstepClient({ url: this.url, token: WORKBENCH })
  }

  /** Waits until the order has ended, and returns its fulfilment. */
  async finished(orderId: string, timeoutMs = 30_000) {
    const c = this.client()
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const { fulfilment } = await c.order(orderId)
      if (fulfilment.state !== 'running') return fulfilment
      if (Date.now() > deadline)
        throw new Error(`order ${orderId} still running: ${JSON.stringify(fulfilment.counts)}`)
      await new Promise((r) => setTimeout(r, 50))
    }
  }

  /** Downloads a job's product (stdout, stderr and out/) into a directory and returns it. */
  async product(orderId: string, jobName: string): Promise<string> {
    const products = await this.client().products(orderId)
    const p = products.find((x) => x.name === jobName)
    if (p === undefined) throw new Error(`no product of ${jobName}`)
    const holder = p.holders.find((h) => h.url !== undefined)!
    const res = await fetch(`${holder.url}/products/${p.jobId}`, {
      headers: { authorization: `Bearer ${WORKER}` },
    })
    const dir = join(this.dir, 'downloads', p.jobId)
    await unpack(Readable.fromWeb(res.body as never), dir)
    return dir
  }

  async stopAll(): Promise<void> {
    for (const p of this.procs) p.child.kill('SIGKILL')
    await Promise.all([...this.procs].map((p) => p.exited))
    rmSync(this.dir, { recursive: true, force: true })
  }
}
