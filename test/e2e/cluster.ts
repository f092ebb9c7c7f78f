/**
 * Real processes for end-to-end tests: a `lockstep server` and `lockstep worker`s on loopback
 * ports, each a child process that the test can kill, and that `stopAll` always ends.
 */
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { Readable } from 'node:stream'
import { LockstepClient } from '../../src/client/client.ts'
import type { StreamEvent } from '../../src/client/client.ts'
import { parseCsv } from '../../src/core/analytics.ts'
import type { Table } from '../../src/core/analytics.ts'
import { unpack } from '../../src/runner/archive.ts'
import type { Opened } from '../leaks.ts'

export const WORKBENCH = 'bench-token-123'
export const WORKER = 'worker-token-123'
export const BOB = 'bob-token-12345'
const TOKENS = `admin:ana:${WORKBENCH},worker:*:${WORKER},workbench:bob:${BOB}`

/** The sample data's three clinics' rows put together, as one machine would hold them. */
export function allClinics(): Table {
  const tables = [1, 2, 3].map((i) =>
    parseCsv(readFileSync(`examples/data/clinic-${i}.csv`, 'utf8')),
  )
  return { columns: tables[0]!.columns, rows: tables.flatMap((t) => t.rows) }
}

/** An `exec` operation that runs a shell script. */
export const sh = (script: string) => ({ exec: ['sh', '-c', script] })

/** w1 makes a file; w2 reads it as its input. */
export const makeThenRead = {
  name: 'pass',
  jobs: [
    { name: 'make', op: sh('printf hello > "$LOCKSTEP_OUT/greeting"'), target: 'w1' },
    {
      name: 'read',
      op: sh('cat "$LOCKSTEP_INPUTS/make/greeting"'),
      after: ['make'],
      target: 'w2',
    },
  ],
}

export interface Proc {
  child: ChildProcess
  /** The first line it printed to stdout. */
  ready: Promise<string>
  /** What it has written to stderr (its log), the last 256 KiB. */
  stderr(): string
  exited: Promise<void>
}

/** Options of a {@link Cluster}. */
export interface ClusterOptions {
  /** The scheduler's store, as `LOCKSTEP_DATABASE_URL` takes it (an SQLite path or postgres://). */
  databaseUrl: string
  /** Tracks every process it starts, for the leak check. */
  opened?: Opened
  /** The scheduler's tokens, `role:name:token,…`. @default an admin, a `worker:*` and a workbench */
  tokens?: string
}

/** Options of one process. */
export interface SpawnOptions {
  /** Node flags before the program, e.g. `--import` of a test preload. */
  node?: string[]
  env?: Record<string, string>
}

/** Every event the scheduler stores, as an admin follows them; see {@link Cluster.events}. */
export interface EventStream {
  /** The events seen so far. */
  readonly seen: StreamEvent[]
  /** Resolves once `done(seen)` holds; rejects when the stream ends first or after `timeoutMs`. */
  until(done: (seen: StreamEvent[]) => boolean, timeoutMs?: number): Promise<StreamEvent[]>
  close(): void
}

export class Cluster {
  readonly dir = mkdtempSync(join(tmpdir(), 'lockstep-e2e-'))
  private readonly procs = new Set<Proc>()
  private readonly streams = new Set<EventStream>()
  private readonly options: ClusterOptions
  url = ''

  constructor(options: ClusterOptions) {
    this.options = options
  }

  private spawn(args: string[], o: SpawnOptions = {}): Proc {
    const child = spawn(process.execPath, [...(o.node ?? []), 'bin/lockstep.js', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LOCKSTEP_DATABASE_URL: this.options.databaseUrl, ...o.env },
    })
    this.options.opened?.child(child, `lockstep ${args[0]} (pid ${child.pid})`)
    let err = ''
    child.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-256 * 1024)))
    const ready = new Promise<string>((resolve, reject) => {
      let out = ''
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString()
        const nl = out.indexOf('\n')
        if (nl >= 0) resolve(out.slice(0, nl))
      })
      child.on('exit', (code) =>
        reject(new Error(`lockstep ${args[0]} exited ${code}: ${err.slice(-4000)}`)),
      )
    })
    ready.catch(() => {})
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()))
    const proc = { child, ready, exited, stderr: () => err }
    this.procs.add(proc)
    void exited.then(() => this.procs.delete(proc))
    return proc
  }

  /**
   * Starts the scheduler (again, on the same store) and learns its URL. Downloads are allowed
   * unless `allowDownload` is false.
   */
  async server(extra: string[] = [], { allowDownload = true } = {}): Promise<Proc> {
    const port = this.url === '' ? '0' : new URL(this.url).port
    const proc = this.spawn([
      'server',
      '--port',
      port,
      '--tokens',
      this.options.tokens ?? TOKENS,
      '--data-dir',
      join(this.dir, 'scheduler'),
      ...(allowDownload ? ['--allow-download'] : []),
      ...extra,
    ])
    const line = await proc.ready
    this.url = /listening on (\S+)/.exec(line)![1]!
    return proc
  }

  /** Starts a worker; `url` is where it serves its products. */
  async worker(
    id: string,
    extra: string[] = [],
    o: SpawnOptions = {},
  ): Promise<Proc & { url: string }> {
    const proc = this.spawn(
      [
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
      ],
      o,
    )
    const line = await proc.ready
    return { ...proc, url: /serving products on (\S+)/.exec(line)![1]! }
  }

  client(token = WORKBENCH): LockstepClient {
    return new LockstepClient({ url: this.url, token })
  }

  /**
   * Follows every event the scheduler stores from now on (the workbench token is an admin's).
   * Resolves once the server has subscribed the stream: it answers only after that.
   */
  async events(): Promise<EventStream> {
    const abort = new AbortController()
    const res = await fetch(`${this.url}/v1/events`, {
      headers: { accept: 'text/event-stream', authorization: `Bearer ${WORKBENCH}` },
      signal: abort.signal,
    })
    if (!res.ok || res.body === null) throw new Error(`events: HTTP ${res.status}`)
    const seen: StreamEvent[] = []
    const waiters = new Set<() => void>()
    let ended: Error | undefined
    void (async () => {
      const decoder = new TextDecoder()
      let buffer = ''
      try {
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          buffer += decoder.decode(chunk, { stream: true })
          let end
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const block = buffer.slice(0, end)
            buffer = buffer.slice(end + 2)
            const type = /^event: (.*)$/m.exec(block)?.[1]
            const data = /^data: (.*)$/m.exec(block)?.[1]
            if (type !== undefined && data !== undefined) {
              seen.push({ type, data: JSON.parse(data) as unknown })
            }
          }
          for (const w of [...waiters]) w()
        }
        ended = new Error('the event stream ended')
      } catch (e) {
        ended = e as Error
      }
      for (const w of [...waiters]) w()
    })()
    const stream: EventStream = {
      seen,
      until: (done, timeoutMs = 30_000) =>
        new Promise((resolve, reject) => {
          const timer = setTimeout(() => {
            waiters.delete(check)
            reject(new Error(`no such event within ${timeoutMs} ms; seen ${seen.length}`))
          }, timeoutMs)
          const check = () => {
            const ok = done(seen)
            if (!ok && ended === undefined) return
            waiters.delete(check)
            clearTimeout(timer)
            if (ok) resolve(seen)
            else reject(new Error(`${ended!.message} before the awaited event`))
          }
          waiters.add(check)
          check()
        }),
      close: () => {
        this.streams.delete(stream)
        abort.abort()
      },
    }
    this.streams.add(stream)
    return stream
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

  /** Starts three workers, `clinic-1` to `clinic-3`, each holding its clinic's sample data. */
  async clinics(): Promise<void> {
    for (const i of [1, 2, 3]) {
      await this.worker(`clinic-${i}`, [
        '--data',
        `clinics=${resolve(`examples/data/clinic-${i}.csv`)}`,
      ])
    }
  }

  /** Downloads a job's product (stdout, stderr and out/) into a directory and returns it. */
  async product(orderId: string, jobName: string): Promise<string> {
    const products = await this.client().products(orderId)
    const p = products.find((x) => x.name === jobName)
    if (p === undefined) throw new Error(`no product of ${jobName}`)
    const holder = p.holders.find((h) => h.url !== undefined)!
    const res = await fetch(`${holder.url}/products/${encodeURIComponent(p.productId)}`, {
      headers: { authorization: `Bearer ${WORKER}` },
    })
    const dir = join(this.dir, 'downloads', p.jobId)
    await unpack(Readable.fromWeb(res.body as never), dir)
    return dir
  }

  async stopAll(): Promise<void> {
    for (const s of [...this.streams]) s.close()
    for (const p of this.procs) p.child.kill('SIGKILL')
    await Promise.all([...this.procs].map((p) => p.exited))
    rmSync(this.dir, { recursive: true, force: true })
  }
}
