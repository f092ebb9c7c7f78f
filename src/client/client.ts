/**
 * The HTTP client of the Lockstep API, shared by the SDK (`lockstep/client`), the CLI and the
 * worker agent. Every error it throws is a {@link LockstepError} with a code of the catalogue:
 * the server's own, UNAVAILABLE for a server that cannot be reached (see `http.ts`). What it
 * answers is typed by the schemas the server answers with (`types.ts`).
 *
 * Rooms: `http.ts` (calls and errors), `follow.ts` (an order's events that survive a dropped
 * stream), `products.ts` (downloads and reading products), `server-sent.ts` (the stream format).
 */
import type { AttemptState } from '../core/engine/fulfilment.ts'
import { LockstepError } from '../core/errors.ts'
import { leavesProduct, productOf } from '../core/model.ts'
import type { OrderState } from '../core/model.ts'
import type { HeartbeatInput, HeartbeatReply, TargetRegistration } from '../core/protocol.ts'
import { followOrder } from './follow.ts'
import type { FollowOptions } from './follow.ts'
import { Http } from './http.ts'
import type { CallInit } from './http.ts'

import { downloadProducts, readProduct, readText } from './products.ts'
import type { Download, DownloadOptions } from './products.ts'
import { serverSentEvents } from './server-sent.ts'
import type {
  ArtifactInput,
  Job,
  JobDetail,
  JobWait,
  ListedJob,
  Lock,
  OrderDetail,
  OrderEvent,
  OrderFulfilment,
  OrderOptions,
  OrderProducts,
  PacketCreated,
  PacketInput,
  ProductHolders,
  Target,
  TargetAttempt,
  TargetFulfilment,
  TargetStatus,
} from './types.ts'

/** Options of a {@link LockstepClient}. */
export interface ClientOptions {
  /** The scheduler's URL, e.g. `http://127.0.0.1:7300`. */
  url: string
  /** A bearer token; none for an open server. */
  token?: string | undefined
}

/** Which orders {@link LockstepClient.orders} lists: the query of `GET /v1/orders`. */
export interface OrderFilter {
  /** Only orders in these states. */
  states?: readonly OrderState[]
  /** Only this owner's (admins and viewers; a workbench sees only its own anyway). */
  owner?: string
  /** Text in the packet name or artifact project (any case), or the start of the order id. */
  q?: string
  /** @default 'created' (newest first); 'priority': highest first, then newest */
  sort?: 'created' | 'priority'
  /** 1–1000. @default 100 */
  limit?: number
  /** Where the page starts: the `next` of the page before. */
  cursor?: string
}

/** One page of {@link LockstepClient.orderPage}. */
export interface OrderPage {
  orders: OrderFulfilment[]
  /** Every order the filters match, on every page. */
  total: number
  /** The cursor of the next page; absent on the last page. */
  next?: string
}

/** Order options that go as query parameters beside a YAML or JSON document. */
export interface DocumentOptions {
  /** 1–100, higher first. @default 50 */
  priority?: number
  /** Artifacts only: run over the live sites if at least this many are live. */
  minSites?: number
  /** Artifacts only: wait up to this long for offline sites. @default 0 */
  waitForSitesMs?: number
}

/** One server-sent event, as {@link LockstepClient.events} hears it. */
export interface StreamEvent {
  type: string
  data: unknown
}

/** A job's output: its attempts (each with the end of its stderr), and its product's streams. */
export interface JobLogs {
  job: Job
  attempts: TargetFulfilment[]
  /** The standard output its product kept; absent until it succeeds, or for an image job. */
  stdout?: string
  /** The standard error its product kept. */
  stderr?: string
}

/** What an order's last job produced (`lockstep up --examples` prints it). */
export interface OrderResult {
  /** The job whose product it is: the order's last. */
  jobId: string
  /** Its `out/result.json`, parsed, when it wrote one (the analytics builtins do). */
  value?: unknown
  /** Its standard output. */
  stdout: string
}

export class LockstepClient {
  readonly url: string
  private readonly http: Http

  constructor(options: ClientOptions) {
    this.http = new Http(options.url, options.token)
    this.url = this.http.url
  }

  /** Calls the API; throws the server's error, or UNAVAILABLE when it cannot be reached. */
  async request<T>(method: string, path: string, body?: unknown, init: CallInit = {}): Promise<T> {
    return (await this.http.exchange<T>(method, path, body, init)).value
  }

  health(): Promise<{ ok: boolean }> {
    return this.request('GET', '/healthz')
  }

  // ---- submitting ----

  /** Binds an artifact over the workers that hold its project's data, and orders it. */
  submitArtifact(artifact: ArtifactInput, options: OrderOptions = {}): Promise<OrderFulfilment> {
    return this.submit({ artifact }, options)
  }

  /** Stores a packet and orders it once. */
  submitPacket(packet: PacketInput, options: OrderOptions = {}): Promise<OrderFulfilment> {
    return this.submit({ packet }, options)
  }

  /**
   * Orders a stored packet by id, or by name (the latest version of the caller's packet of that
   * name; an admin may write `owner/name`).
   */
  submitStoredPacket(nameOrId: string, options: OrderOptions = {}): Promise<OrderFulfilment> {
    return this.submit({ packetRef: nameOrId }, options)
  }

  /** Stores a packet to order later (a name used again gets a new version). */
  createPacket(packet: PacketInput): Promise<PacketCreated> {
    return this.request('POST', '/v1/packets', packet)
  }

  /** Orders an artifact, a packet, or a stored packet by id or name. */
  submit(
    what: { artifact: unknown } | { packet: unknown } | { packetRef: string },
    options: OrderOptions = {},
  ): Promise<OrderFulfilment> {
    return this.request('POST', '/v1/orders', { ...what, options })
  }

  /**
   * Orders what a YAML or JSON document holds (an artifact or a packet), as the server reads it:
   * errors name line and column. With `waitForSitesMs`, the answer comes once the artifact is
   * bound (or refused).
   */
  submitDocument(text: string, options: DocumentOptions = {}): Promise<OrderFulfilment> {
    const query = new URLSearchParams()
    for (const [key, value] of Object.entries(options)) {
      if (value !== undefined) query.set(key, String(value))
    }
    const q = query.size === 0 ? '' : `?${query.toString()}`
    return this.request('POST', `/v1/orders${q}`, text, { contentType: 'application/yaml' })
  }

  // ---- following ----

  /**
   * An order's events, from its submission (or after `options.after`) until it ends: an async
   * iterator that reconnects after a dropped stream and loses and repeats none. Each event is
   * typed by its `type`; a `fulfilment` event carries the order's progress.
   */
  follow(
    orderId: string,
    options: FollowOptions = {},
  ): AsyncGenerator<OrderEvent, void, undefined> {
    return followOrder(this.http, orderId, options)
  }

  /** Follows an order to its end and gives its final fulfilment. */
  async wait(orderId: string, options: FollowOptions = {}): Promise<OrderFulfilment> {
    let last: OrderFulfilment | undefined
    for await (const e of this.follow(orderId, options)) {
      if (e.type === 'fulfilment') last = e.fulfilment
    }
    // Stopped by the caller's signal before the end: what is known now.
    return last?.state === 'running' || last === undefined
      ? (await this.order(orderId)).fulfilment
      : last
  }

  /**
   * One connection to `GET /v1/events` (one order's, or every event for an admin or a viewer),
   * calling `onEvent` for each; resolves when the stream ends, and does not reconnect: see
   * {@link follow} for that.
   */
  async events(
    orderId: string | undefined,
    onEvent: (e: StreamEvent) => void,
    options: { signal?: AbortSignal; after?: number } = {},
  ): Promise<void> {
    const query = new URLSearchParams()
    if (orderId !== undefined) query.set('order', orderId)
    if (options.after !== undefined) query.set('after', String(options.after))
    const res = await this.http.open('GET', `/v1/events?${query.toString()}`, undefined, {
      signal: options.signal,
      headers: { accept: 'text/event-stream' },
    })
    for await (const e of serverSentEvents(res.body!)) {
      if (e.data !== '') onEvent({ type: e.event, data: JSON.parse(e.data) as unknown })
    }
  }

  // ---- reading ----

  /** One page of orders, newest first unless sorted by priority; a number is the limit alone. */
  async orders(filter: OrderFilter | number = {}): Promise<OrderFulfilment[]> {
    return (await this.orderPage(typeof filter === 'number' ? { limit: filter } : filter)).orders
  }

  /**
   * One page of orders with how many match in all, and the cursor of the next page (undefined
   * on the last): pass it as `cursor`, with the same filters, to read on.
   */
  async orderPage(filter: OrderFilter = {}): Promise<OrderPage> {
    const query = new URLSearchParams()
    for (const state of filter.states ?? []) query.append('state', state)
    for (const key of ['owner', 'q', 'sort', 'limit', 'cursor'] as const) {
      const value = filter[key]
      if (value !== undefined) query.set(key, String(value))
    }
    const { value, headers } = await this.http.exchange<OrderFulfilment[]>(
      'GET',
      `/v1/orders?${query.toString()}`,
    )
    const next = headers.get('lockstep-next-cursor')
    return {
      orders: value,
      total: Number(headers.get('lockstep-total') ?? value.length),
      ...(next === null ? {} : { next }),
    }
  }

  /** An order and its fulfilment (its state and progress). */
  order(orderId: string): Promise<OrderDetail> {
    return this.request('GET', `/v1/orders/${encodeURIComponent(orderId)}`)
  }

  /** An order's progress: its state, its jobs counted by state. */
  async status(orderId: string): Promise<OrderFulfilment> {
    return (await this.order(orderId)).fulfilment
  }

  /** An order's jobs: why each waits, and the artefacts each one's latest attempt reported. */
  jobs(orderId: string): Promise<ListedJob[]> {
    return this.request('GET', `/v1/orders/${encodeURIComponent(orderId)}/jobs`)
  }

  /** An order's locks: each lets `nextId` start once `jobId` has succeeded. */
  locks(orderId: string): Promise<Lock[]> {
    return this.request('GET', `/v1/orders/${encodeURIComponent(orderId)}/locks`)
  }

  /** A job, its attempts, its inputs and why it waits. */
  job(jobId: string): Promise<JobDetail> {
    return this.request('GET', `/v1/jobs/${encodeURIComponent(jobId)}`)
  }

  /**
   * Why a job has not started (its locks, a backoff, a locality delay, a held resource, no
   * target that may take it, …), as data and in words; undefined once it runs or has ended.
   */
  async jobWait(jobId: string): Promise<JobWait | undefined> {
    return (await this.job(jobId)).wait
  }

  /**
   * A job's output, as `lockstep logs` shows it: every attempt (a failed one with the end of its
   * stderr as `message`), and once it succeeded, the stdout and stderr its product kept.
   */
  async logs(jobId: string): Promise<JobLogs> {
    const { job, attempts } = await this.job(jobId)
    // A Pod keeps no product: what it made is in its artefacts, its output in its cluster's logs.
    const product = job.state === 'succeeded' && leavesProduct(job) ? productOf(job) : undefined
    if (product === undefined) return { job, attempts }
    return readProduct(this, product, async (dir) => {
      const [stdout, stderr] = await Promise.all([readText(dir, 'stdout'), readText(dir, 'stderr')])
      return { job, attempts, stdout: stdout ?? '', stderr: stderr ?? '' }
    })
  }

  /** What the order's last job produced: its `out/result.json` and its stdout. */
  async result(orderId: string): Promise<OrderResult> {
    const [jobs, products] = await Promise.all([this.jobs(orderId), this.products(orderId)])
    const last = jobs.reduce((a, b) => (b.index > a.index ? b : a))
    // The product's id is the API's, never built from the job's: a job with a cache key makes
    // `cache:KEY`. The scheduler relays it from whichever target holds it, the initiator included.
    const product = products.find((p) => p.jobId === last.id)
    if (product === undefined || product.holders.length === 0) {
      throw new LockstepError(
        'PRODUCT_NOT_FOUND',
        `the last job of order ${orderId} (${last.name}, ${last.state}) has no product a live target holds`,
      )
    }
    return readProduct(this, product.productId, async (dir) => {
      const json = await readText(dir, 'out', 'result.json')
      const stdout = (await readText(dir, 'stdout')) ?? ''
      return json === undefined
        ? { jobId: last.id, stdout }
        : { jobId: last.id, value: JSON.parse(json) as unknown, stdout }
    })
  }

  /** Downloads an order's products into `dir`, one folder per job (see `downloadProducts`). */
  download(orderId: string, dir: string, options: DownloadOptions = {}): Promise<Download> {
    return downloadProducts(this, orderId, dir, options)
  }

  // ---- changing ----

  /** Cancels an order: its waiting jobs are cancelled, its running attempts told to stop. */
  cancelOrder(orderId: string): Promise<OrderFulfilment> {
    return this.request('POST', `/v1/orders/${encodeURIComponent(orderId)}/cancel`)
  }

  /** Cancels a job; its dependents are skipped, or its order fails, by its failure policy. */
  cancelJob(jobId: string): Promise<Job> {
    return this.request('POST', `/v1/jobs/${encodeURIComponent(jobId)}/cancel`)
  }

  // ---- products and targets ----

  /** The products of an order's jobs, with where each is held. */
  products(orderId: string): Promise<OrderProducts> {
    return this.request('GET', `/v1/orders/${encodeURIComponent(orderId)}/products`)
  }

  /** A product's content as an archive stream, relayed by the scheduler. */
  async productContent(productId: string): Promise<AsyncIterable<Uint8Array>> {
    const path = `/v1/products/${encodeURIComponent(productId)}/content`
    return (await this.http.open('GET', path)).body!
  }

  locate(productId: string): Promise<ProductHolders> {
    return this.request('GET', `/v1/products/${encodeURIComponent(productId)}`)
  }

  workers(): Promise<TargetStatus[]> {
    return this.request('GET', '/v1/targets')
  }

  /**
   * The attempts on a target, newest first: at most `limit` (100 unless given, 1000 at most),
   * only those in `state` when given. A workbench gets its own orders' attempts only.
   */
  fulfilments(
    targetId: string,
    options: { limit?: number; state?: AttemptState } = {},
  ): Promise<TargetAttempt[]> {
    const query = new URLSearchParams()
    if (options.limit !== undefined) query.set('limit', String(options.limit))
    if (options.state !== undefined) query.set('state', options.state)
    const q = query.size === 0 ? '' : `?${query.toString()}`
    return this.request('GET', `/v1/targets/${encodeURIComponent(targetId)}/fulfilments${q}`)
  }

  // ---- the worker's calls ----

  register(registration: TargetRegistration): Promise<Target> {
    return this.request('POST', '/v1/targets', registration)
  }

  /** Closes the connections it keeps alive; a later call opens new ones. */
  close(): void {
    this.http.close()
  }

  heartbeat(workerId: string, body: HeartbeatInput, signal?: AbortSignal): Promise<HeartbeatReply> {
    return this.request('POST', `/v1/targets/${encodeURIComponent(workerId)}/heartbeat`, body, {
      signal,
    })
  }

  /** Forgets a target that left or was lost (an admin's call): it is no longer a site. */
  forgetTarget(targetId: string): Promise<void> {
    return this.request('POST', `/v1/targets/${encodeURIComponent(targetId)}/forget`)
  }

  leave(workerId: string): Promise<void> {
    return this.request('DELETE', `/v1/targets/${encodeURIComponent(workerId)}`)
  }
}
