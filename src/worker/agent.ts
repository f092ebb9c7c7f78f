/**
 * The worker agent: registers with its slots, data projects and cached products, then
 * heartbeats: results and cache changes in, jobs out. It runs each job in a fresh directory,
 * keeps products in its cache, serves them to peers, and fetches its inputs from the workers
 * that hold them. On stop it takes no more jobs, lets running ones finish within a grace
 * period, ends the process groups of those still running, reports them, and leaves.
 */
import { pino } from 'pino'
import type { Logger } from 'pino'
import { createServer } from 'node:http'
import type { Server, ServerResponse } from 'node:http'
import { mkdir } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { LockstepClient } from '../client/client.ts'
import type { Assignment, HeartbeatInput, HeartbeatReply } from '../core/protocol.ts'
import { LockstepError } from '../core/errors.ts'
import { operationKind } from '../core/model.ts'
import type { JobResult, OperationKind } from '../core/model.ts'
import { ProductCache, sendProduct } from '../runner/products.ts'
import { execute } from '../runner/execute.ts'
import { PeerCapabilities } from './peer-capabilities.ts'
import { untilReachable } from './until-reachable.ts'
import type { RunningJob } from '../runner/run-job.ts'

/** Options of a {@link WorkerAgent}. */
export interface AgentOptions {
  /** The scheduler's URL. */
  server: string
  token?: string
  id: string
  /** Jobs at once. @default 1 */
  slots?: number
  /** Data by project: the projects this worker holds, and where. */
  data?: Record<string, string>
  labels?: Record<string, string>
  /** Where products and job directories live. */
  cacheDir: string
  /** Products beyond this size are evicted, oldest first. @default 1 GiB */
  cacheBytes?: number
  /**
   * A job whose product (`out/`, stdout and stderr) holds more fails with reason
   * `output-too-large`. `lockstep worker --max-product-bytes`. @default 10 GiB
   */
  maxProductBytes?: number
  /**
   * A product fetched from a peer or the relay that would unpack to more is refused, and that
   * fetch fails. `lockstep worker --max-input-bytes`. @default 10 GiB
   */
  maxInputBytes?: number
  /** Where the product server listens. @default 127.0.0.1, a free port */
  host?: string
  port?: number
  /** The URL peers reach the product server at. @default http://host:port */
  advertiseUrl?: string
  /** The longest a heartbeat waits for work. @default 10000 */
  waitMs?: number
  /** How long a stop waits for running jobs. @default 30000 */
  graceMs?: number
  /** Where it logs (pino). @default silent */
  logger?: Logger
  /**
   * The operation kinds it runs: the scheduler hands it no other, and it refuses one that
   * arrives anyway (reason `refused`). `lockstep worker --allow`. @default ['builtin', 'exec']
   */
  runs?: readonly OperationKind[]
  /**
   * How long a job's process group has after SIGTERM (its main process exited, it was cancelled
   * or timed out) before SIGKILL. `lockstep worker --kill-grace-ms`. @default 2000
   */
  killGraceMs?: number
  /**
   * The most a job may write to stdout; past it the job is ended and fails with reason
   * `output-too-large`. `lockstep worker --max-stdout-bytes`. @default 64 MiB
   */
  maxStdoutBytes?: number
  /** The same cap for stderr. `lockstep worker --max-stderr-bytes`. @default 64 MiB */
  maxStderrBytes?: number
}

interface Running {
  assignment: Assignment
  job: RunningJob | undefined
  /** Why it was told to stop before it started (while its inputs were fetched). */
  stopped: string | undefined
}

/** Attempts are kept by job and attempt: a retry may arrive while the old attempt still ends. */
const attemptKey = (jobId: string, attempt: number) => `${jobId}#${attempt}`

export class WorkerAgent {
  readonly id: string
  readonly client: LockstepClient
  private readonly options: AgentOptions
  private readonly slots: number
  private readonly runs: readonly OperationKind[]
  private readonly cache: ProductCache
  private readonly running = new Map<string, Running>()
  private results: NonNullable<HeartbeatInput['results']> = []
  private added: string[] = []
  private removed: string[] = []
  private stopping = false
  private loopDone: Promise<void> = Promise.resolve()
  private productServer: Server | undefined
  private url = ''
  /** A heartbeat of the main loop is in flight. */
  private inPoll = false
  /** Free slots promised to it. */
  private polling = 0
  /** Report heartbeats in flight, and the free slots they asked to fill. */
  private reporting = 0
  private promised = 0
  /** Ends the long poll in flight when the agent stops: it leaves right after, so nothing is lost. */
  private readonly quit = new AbortController()
  private readonly log: Logger
  /** Checks peers' capabilities with the scheduler's public key. */
  private readonly peers: PeerCapabilities

  private constructor(options: AgentOptions) {
    this.options = options
    this.id = options.id
    this.slots = options.slots ?? 1
    this.runs = options.runs ?? ['builtin', 'exec']
    this.client = new LockstepClient({ url: options.server, token: options.token })
    this.cache = new ProductCache(options.cacheDir, options.cacheBytes ?? 1024 ** 3)
    this.log = (options.logger ?? pino({ level: 'silent' })).child({ worker: options.id })
    this.peers = new PeerCapabilities(this.client, this.log)
  }

  static async start(options: AgentOptions): Promise<WorkerAgent> {
    const agent = new WorkerAgent(options)
    await agent.begin()
    return agent
  }

  /** The URL this worker serves its products at. */
  get productUrl(): string {
    return this.url
  }

  private async begin(): Promise<void> {
    const cached = await this.cache.open()
    await mkdir(join(this.options.cacheDir, 'jobs'), { recursive: true })
    this.productServer = createServer((req, res) => {
      this.serveProduct(req.url ?? '', req.headers.authorization, res).catch((e: unknown) => {
        // A product evicted or unreadable mid-transfer: the peer sees a cut connection and
        // tries another holder.
        this.log.warn({ error: String(e) }, 'serving a product failed')
        res.destroy()
      })
    })
    await new Promise<void>((resolve, reject) => {
      this.productServer!.once('error', reject)
      this.productServer!.listen(this.options.port ?? 0, this.options.host ?? '127.0.0.1', () =>
        resolve(),
      )
    })
    const address = this.productServer.address() as AddressInfo
    this.url =
      this.options.advertiseUrl ?? `http://${this.options.host ?? '127.0.0.1'}:${address.port}`
    try {
      await untilReachable(() => this.register(cached), this.log)
    } catch (e) {
      // Nothing started: leave no server behind to keep the process alive.
      await new Promise<void>((resolve) => this.productServer!.close(() => resolve()))
      throw e
    }
    await this.peers.loadKey()
    this.loopDone = this.loop()
  }

  private async register(cached = this.cache.ids()): Promise<void> {
    await this.client.register({
      id: this.id,
      slots: this.slots,
      projects: Object.keys(this.options.data ?? {}),
      labels: this.options.labels,
      cached,
      url: this.url,
      runs: [...this.runs],
      running: [...this.running.values()].map((r) => ({
        jobId: r.assignment.jobId,
        attempt: r.assignment.attempt,
      })),
    })
    this.log.info({ url: this.url, cached: cached.length }, 'registered')
  }

  /** Takes no more jobs, waits for running ones (up to the grace period), reports them, leaves. */
  async stop(): Promise<void> {
    if (this.stopping) return
    this.stopping = true
    this.quit.abort()
    const grace = this.options.graceMs ?? 30_000
    const deadline = Date.now() + grace
    // While jobs finish, keep reporting them and keep the lease: no new jobs are taken.
    let beat = 0
    while (this.running.size > 0 && Date.now() < deadline) {
      await sleep(50)
      if (++beat % 20 === 0) await this.flushReports(true)
    }
    // A cancelled job ends with its whole process group: nothing it started outlives the worker.
    // (A worker that exits without this stop still kills them, from the runner's exit hook.)
    for (const r of this.running.values()) {
      if (r.job === undefined) r.stopped ??= 'the worker is stopping'
      else r.job.cancel('the worker is stopping')
    }
    while (this.running.size > 0) await sleep(20)
    await this.loopDone.catch(() => {})
    await this.flushReports()
    await this.client.leave(this.id).catch(() => {})
    this.client.close()
    await new Promise<void>((resolve) => {
      this.productServer?.close(() => resolve())
      this.productServer?.closeAllConnections()
    })
  }

  /** Sends what is waiting to be reported; `always` sends a heartbeat even with nothing to say. */
  private async flushReports(always = false): Promise<void> {
    const quiet = this.results.length === 0 && this.added.length === 0 && this.removed.length === 0
    if (quiet && !always) return
    const body = this.takeReports()
    await this.client.heartbeat(this.id, body).catch(() => this.putBack(body))
  }

  private takeReports(): HeartbeatInput {
    const running = [...this.running.values()].map((r) => ({
      jobId: r.assignment.jobId,
      attempt: r.assignment.attempt,
    }))
    const body = { results: this.results, added: this.added, removed: this.removed, running }
    this.results = []
    this.added = []
    this.removed = []
    return body
  }

  private putBack(body: HeartbeatInput): void {
    this.results.unshift(...(body.results ?? []))
    this.added.unshift(...(body.added ?? []))
    this.removed.unshift(...(body.removed ?? []))
  }

  private async loop(): Promise<void> {
    while (!this.stopping) {
      const free = Math.max(0, this.slots - this.running.size - this.promised)
      const body: HeartbeatInput = { ...this.takeReports(), free }
      const quiet =
        body.results!.length === 0 && body.added!.length === 0 && body.removed!.length === 0
      body.waitMs = quiet ? (this.options.waitMs ?? 10_000) : 0
      this.polling = free
      this.inPoll = true
      let reply: HeartbeatReply
      try {
        reply = await this.client.heartbeat(this.id, body, this.quit.signal)
      } catch (e) {
        this.putBack(body)
        if (this.stopping) break
        await this.recover(e)
        continue
      } finally {
        this.polling = 0
        this.inPoll = false
      }
      this.apply(reply)
    }
  }

  /** After a failed heartbeat: register again if the scheduler lost us, else wait and retry. */
  private async recover(e: unknown): Promise<void> {
    if (e instanceof LockstepError && e.code === 'TARGET_NOT_FOUND') {
      await this.register().catch(() => sleep(1000))
      return
    }
    this.log.warn({ error: (e as Error).message }, 'heartbeat failed')
    await sleep(1000)
  }

  private apply(reply: HeartbeatReply): void {
    for (const s of reply.stop) {
      const r = this.running.get(attemptKey(s.jobId, s.attempt))
      if (r === undefined) continue
      if (r.job === undefined) r.stopped = s.reason
      else r.job.cancel(s.reason)
    }
    for (const a of reply.assignments) this.startJob(a)
  }

  /** Reports results at once while the main loop waits in a long poll. */
  private report(): void {
    if (this.reporting >= MAX_REPORTS || !this.inPoll || this.stopping) return
    this.reporting++
    void (async () => {
      try {
        // Up to MAX_REPORTS of these run at once: while one waits for its commit, the next
        // carries the results that came in meanwhile and takes jobs for the slots they freed.
        while (this.results.length > 0 || this.added.length > 0) {
          const free = Math.max(0, this.slots - this.running.size - this.polling - this.promised)
          const body: HeartbeatInput = { ...this.takeReports(), free, waitMs: 0 }
          this.promised += free
          try {
            this.apply(await this.client.heartbeat(this.id, body))
          } catch (e) {
            this.putBack(body)
            await this.recover(e)
          } finally {
            this.promised -= free
          }
        }
      } finally {
        this.reporting--
      }
    })()
  }

  private startJob(a: Assignment): void {
    const entry: Running = { assignment: a, job: undefined, stopped: undefined }
    this.running.set(attemptKey(a.jobId, a.attempt), entry)
    void this.execute(entry).then(
      (result) => this.finish(a, result),
      (e: unknown) =>
        this.finish(a, { ok: false, reason: 'worker-error', message: (e as Error).message }),
    )
  }

  private async finish(a: Assignment, result: JobResult): Promise<void> {
    this.running.delete(attemptKey(a.jobId, a.attempt))
    this.results.push({ jobId: a.jobId, attempt: a.attempt, result })
    if (!result.ok) {
      this.log.info({ job: a.jobId, name: a.name, result }, 'job failed')
    }
    this.report()
    await Promise.resolve()
  }

  private async execute(entry: Running): Promise<JobResult> {
    const kind = operationKind(entry.assignment.op)
    if (!this.runs.includes(kind)) {
      // Defence in depth: the scheduler hands it no such job, unless it forgot what this worker
      // runs (a restart of the scheduler keeps no registration's kinds). Telling it again
      // keeps the next one away.
      this.log.warn(
        { job: entry.assignment.jobId, kind },
        'refused a job of a kind it does not run',
      )
      // Registered before the refusal is reported: its retry cannot come back here.
      await this.register().catch(() => {})
      return {
        ok: false,
        reason: 'refused',
        message: `worker ${this.id} runs ${this.runs.join(' and ')} jobs only, not ${kind}`,
      }
    }
    const done = await execute(entry.assignment, {
      cache: this.cache,
      jobsDir: join(this.options.cacheDir, 'jobs'),
      self: this.id,
      token: this.options.token,
      data: this.options.data ?? {},
      locate: async (id) => (await this.client.locate(id)).holders,
      relay: `${this.client.url}/v1/products`,
      limits: {
        killGraceMs: this.options.killGraceMs,
        maxStdoutBytes: this.options.maxStdoutBytes,
        maxStderrBytes: this.options.maxStderrBytes,
      },
      maxProductBytes: this.options.maxProductBytes,
      maxInputBytes: this.options.maxInputBytes,
      started: (job) => {
        entry.job = job
        if (entry.stopped !== undefined) job.cancel(entry.stopped)
      },
    })
    this.added.push(...done.added)
    this.removed.push(...done.removed)
    return done.result
  }

  private async serveProduct(
    url: string,
    authorization: string | undefined,
    res: ServerResponse,
  ): Promise<void> {
    const m = /^\/products\/([^/?]+)$/.exec(url)
    let id: string | undefined
    try {
      id = m === null ? undefined : decodeURIComponent(m[1]!)
    } catch {
      id = undefined
    }
    if (id === undefined) {
      res.writeHead(404).end()
      return
    }
    await sendProduct(this.cache, id, authorization, this.options.token, res, (text, product) =>
      this.peers.check(text, product),
    )
  }
}

/** Report heartbeats in flight at once. */
const MAX_REPORTS = 3

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}
