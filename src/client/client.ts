/**
 * The HTTP client of the Lockstep API, shared by the CLI, the SDK, the worker agent and the
 * dashboard. Errors from the server come back as {@link LockstepError}s with the server's code;
 * a server that cannot be reached is an error that says so.
 */
import type { HeartbeatInput, HeartbeatReply, TargetRegistration } from '../core/protocol.ts'
import type { AttemptState, OrderFulfilment, TargetFulfilment } from '../core/engine/fulfilment.ts'
import { LockstepError, StoreUnavailableError, ValidationError } from '../core/errors.ts'
import type { ErrorCode, Issue } from '../core/errors.ts'
import type { Job, Lock, Order, OrderState, Target } from '../core/model.ts'
import type { OrderOptions } from '../core/order.ts'
import { serverSentEvents } from './server-sent.ts'

/** Options of a {@link LockstepClient}. */
export interface ClientOptions {
  /** The scheduler's URL, e.g. `http://127.0.0.1:7300`. */
  url: string
  /** A bearer token; none for an open server. */
  token?: string
}

/** A product's holders, with the URL each serves it from. */
export interface ProductHolders {
  productId: string
  holders: { target: string; url?: string }[]
}

/** An attempt on a target, with what runs it there when its driver says (a Pod and its phase). */
export type TargetAttempt = TargetFulfilment & { unit?: { name: string; phase: string } }

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

/** Why a job waits: its machine-readable fields (see `JobWait`), and `text`, the same in words. */
export type JobWaitWords = { kind: string; text: string } & Record<string, unknown>

/** One server-sent event. */
export interface StreamEvent {
  type: string
  data: unknown
}

export class LockstepClient {
  readonly url: string
  private readonly token: string | undefined

  constructor(options: ClientOptions) {
    this.url = options.url.replace(/\/+$/, '')
    this.token = options.token
  }

  /** Calls the API; throws the server's error, or one that says the server cannot be reached. */
  async request<T>(
    method: string,
    path: string,
    body?: unknown,
    init: { signal?: AbortSignal; contentType?: string } = {},
  ): Promise<T> {
    return (await this.exchange<T>(method, path, body, init)).value
  }

  /** {@link request}, with the answer's headers. */
  private async exchange<T>(
    method: string,
    path: string,
    body?: unknown,
    init: { signal?: AbortSignal; contentType?: string } = {},
  ): Promise<{ value: T; headers: Headers }> {
    const headers: Record<string, string> = {}
    if (this.token !== undefined) headers.authorization = `Bearer ${this.token}`
    let payload: string | undefined
    if (body !== undefined) {
      headers['content-type'] = init.contentType ?? 'application/json'
      payload = typeof body === 'string' ? body : JSON.stringify(body)
    }
    let res: Response
    try {
      res = await fetch(`${this.url}${path}`, {
        method,
        headers,
        body: payload,
        signal: init.signal,
      })
    } catch (e) {
      if (init.signal?.aborted === true) throw e
      throw unreachable(this.url, e)
    }
    const text = await res.text()
    if (!res.ok) throw errorFromResponse(res.status, text, res.headers.get('retry-after'))
    return { value: (text === '' ? undefined : JSON.parse(text)) as T, headers: res.headers }
  }

  health(): Promise<{ ok: boolean }> {
    return this.request('GET', '/healthz')
  }

  /** Orders an artifact, a packet, or a stored packet by id or name. */
  submit(
    what: { artifact: unknown } | { packet: unknown } | { packetRef: string },
    options: OrderOptions = {},
  ): Promise<OrderFulfilment> {
    return this.request('POST', '/v1/orders', { ...what, options })
  }

  /**
   * Orders what a YAML or JSON file holds, as the server reads it (errors name line and column);
   * its options go as query parameters.
   * With `waitForSitesMs`, the answer comes once the artifact is bound (or refused).
   */
  submitDocument(
    text: string,
    options: { priority?: number; minSites?: number; waitForSitesMs?: number } = {},
  ): Promise<OrderFulfilment> {
    const query = new URLSearchParams()
    for (const [key, value] of Object.entries(options)) {
      if (value !== undefined) query.set(key, String(value))
    }
    const q = query.size === 0 ? '' : `?${query.toString()}`
    return this.request('POST', `/v1/orders${q}`, text, { contentType: 'application/yaml' })
  }

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
    const { value, headers } = await this.exchange<OrderFulfilment[]>(
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

  order(orderId: string): Promise<{ order: Order; fulfilment: OrderFulfilment }> {
    return this.request('GET', `/v1/orders/${encodeURIComponent(orderId)}`)
  }

  /** An order's jobs: why each waits, and the artefacts each one's latest attempt reported. */
  jobs(orderId: string): Promise<(Job & { wait?: JobWaitWords; artefacts?: string[] })[]> {
    return this.request('GET', `/v1/orders/${encodeURIComponent(orderId)}/jobs`)
  }

  /** An order's locks: each lets `nextId` start once `jobId` has succeeded. */
  locks(orderId: string): Promise<Lock[]> {
    return this.request('GET', `/v1/orders/${encodeURIComponent(orderId)}/locks`)
  }

  job(
    jobId: string,
  ): Promise<{ job: Job; attempts: TargetFulfilment[]; inputs: unknown[]; wait: unknown }> {
    return this.request('GET', `/v1/jobs/${encodeURIComponent(jobId)}`)
  }

  cancelOrder(orderId: string): Promise<OrderFulfilment> {
    return this.request('POST', `/v1/orders/${encodeURIComponent(orderId)}/cancel`)
  }

  cancelJob(jobId: string): Promise<Job> {
    return this.request('POST', `/v1/jobs/${encodeURIComponent(jobId)}/cancel`)
  }

  products(
    orderId: string,
  ): Promise<
    { jobId: string; productId: string; name: string; holders: ProductHolders['holders'] }[]
  > {
    return this.request('GET', `/v1/orders/${encodeURIComponent(orderId)}/products`)
  }

  workers(): Promise<{ target: Target; live: boolean; running: number; problem?: string }[]> {
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

  register(registration: TargetRegistration): Promise<Target> {
    return this.request('POST', '/v1/targets', registration)
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

  locate(productId: string): Promise<ProductHolders> {
    return this.request('GET', `/v1/products/${encodeURIComponent(productId)}`)
  }

  /** A product's content as an archive stream, relayed by the scheduler. */
  async productContent(productId: string): Promise<AsyncIterable<Uint8Array>> {
    const headers: Record<string, string> = {}
    if (this.token !== undefined) headers.authorization = `Bearer ${this.token}`
    const res = await fetch(`${this.url}/v1/products/${encodeURIComponent(productId)}/content`, {
      headers,
    })
    if (!res.ok || res.body === null)
      throw errorFromResponse(res.status, await res.text(), res.headers.get('retry-after'))
    return res.body
  }

  /**
   * Follows server-sent events (one order's, until it ends, or every event for an admin),
   * calling `onEvent` for each; resolves when the stream ends.
   */
  async follow(
    orderId: string | undefined,
    onEvent: (e: StreamEvent) => void,
    signal?: AbortSignal,
  ): Promise<void> {
    const headers: Record<string, string> = { accept: 'text/event-stream' }
    if (this.token !== undefined) headers.authorization = `Bearer ${this.token}`
    const query = orderId === undefined ? '' : `?order=${encodeURIComponent(orderId)}`
    const res = await fetch(`${this.url}/v1/events${query}`, { headers, signal })
    if (!res.ok || res.body === null)
      throw errorFromResponse(res.status, await res.text(), res.headers.get('retry-after'))
    for await (const e of serverSentEvents(res.body)) {
      if (e.data !== '') onEvent({ type: e.event, data: JSON.parse(e.data) as unknown })
    }
  }
}

/** The error a request that reached no scheduler ends with. */
export function unreachable(url: string, cause: unknown): LockstepError {
  return new LockstepError(
    'UNAVAILABLE',
    `cannot reach the scheduler at ${url} (${(cause as Error).message}); is it running?`,
  )
}

/** The error an answer of the API with an error status carries, with the server's code. */
export function errorFromResponse(
  status: number,
  text: string,
  retryAfter: string | null,
): LockstepError {
  let parsed: { error?: { code?: string; message?: string; issues?: Issue[] } } | undefined
  try {
    parsed = JSON.parse(text) as typeof parsed
  } catch {
    parsed = undefined
  }
  const e = parsed?.error
  if (e?.issues !== undefined && e.code !== undefined) {
    return new ValidationError(e.issues, e.code as ErrorCode)
  }
  if (e?.code === 'STORE_UNAVAILABLE') {
    // The scheduler's database fails: the caller learns when it is worth trying again.
    return new StoreUnavailableError(e.message ?? 'the database fails', Number(retryAfter) || 1)
  }
  const error = new LockstepError(
    (e?.code as ErrorCode | undefined) ?? (status >= 500 ? 'INTERNAL' : 'NOT_FOUND'),
    e?.message ?? `HTTP ${status}: ${text.slice(0, 200)}`,
  )
  return error
}
