/**
 * Following an order: its events as an async iterator that survives a dropped stream. Each
 * connection asks for the events after the last one heard (`Last-Event-ID`), and an event whose
 * seq was heard already is dropped, so the caller sees every event of the order once, in the
 * log's order, however often the stream is cut. It ends when the order has ended.
 *
 * A cut is tried again after a wait that doubles from the server's `retry` (or `retryMinMs`) up
 * to `retryMaxMs`, and starts over once a connection hears something; after `maxRetries`
 * connections in a row that heard nothing, the iterator throws UNAVAILABLE. A refusal (the
 * order is not found, the token may not follow it) is thrown at once.
 */
import { LockstepError } from '../core/errors.ts'
import type { StreamedEvent } from '../core/event-log.ts'
import type { Http } from './http.ts'
import { serverSentEvents } from './server-sent.ts'
import type { OrderEvent, OrderFulfilment } from './types.ts'

/** How {@link followOrder} follows. */
export interface FollowOptions {
  /**
   * The seq of the last event already heard: only later ones come. 0 replays the order from its
   * submission. @default 0
   */
  after?: number
  /** Stops following: the iterator ends without an error. */
  signal?: AbortSignal
  /** The first wait before connecting again, unless the server asks for another. @default 250 */
  retryMinMs?: number
  /** The longest wait between two connections. @default 10000 */
  retryMaxMs?: number
  /** Connections in a row that hear nothing before giving up with UNAVAILABLE. @default 30 */
  maxRetries?: number
}

/** Errors a new connection may get past: the network, a restarting server, a full quota. */
const PASSING = new Set(['UNAVAILABLE', 'STORE_UNAVAILABLE', 'QUOTA_EXCEEDED', 'INTERNAL'])

/** An order's events, from `after` on, until the order ends; see the module's comment. */
export async function* followOrder(
  http: Http,
  orderId: string,
  options: FollowOptions = {},
): AsyncGenerator<OrderEvent, void, undefined> {
  const retryMin = options.retryMinMs ?? 250
  const retryMax = options.retryMaxMs ?? 10_000
  const maxRetries = options.maxRetries ?? 30
  const abort = new AbortController()
  const stop = () => abort.abort()
  options.signal?.addEventListener('abort', stop, { once: true })
  if (options.signal?.aborted === true) abort.abort()
  let last = options.after ?? 0
  let serverRetry: number | undefined
  let quiet = 0
  let wait: number | undefined
  try {
    while (!abort.signal.aborted) {
      let heard = false
      let cause: unknown
      try {
        const res = await http.open(
          'GET',
          `/v1/events?order=${encodeURIComponent(orderId)}`,
          undefined,
          {
            signal: abort.signal,
            headers: { accept: 'text/event-stream', 'last-event-id': String(last) },
          },
        )
        for await (const block of serverSentEvents(res.body!)) {
          if (block.retry !== undefined) serverRetry = block.retry
          if (block.data === '') continue
          const data = parse(block.data)
          if (block.event === 'fulfilment') {
            heard = true
            const fulfilment = data as OrderFulfilment
            yield { type: 'fulfilment', fulfilment }
            if (fulfilment.state !== 'running') return
            continue
          }
          const seq = Number(block.id)
          // An event without an id is none of the log's; one heard already is not told twice.
          if (block.id === undefined || !(seq > last)) continue
          last = seq
          heard = true
          yield data as StreamedEvent
        }
        cause = new Error('the server ended the stream')
      } catch (e) {
        if (abort.signal.aborted) return
        if (e instanceof LockstepError && !PASSING.has(e.code)) throw e
        cause = e
      }
      if (heard) {
        quiet = 0
        wait = undefined
      } else if (++quiet > maxRetries) {
        throw new LockstepError(
          'UNAVAILABLE',
          `lost the event stream of order ${orderId} after event ${last}, and ${maxRetries} tries to reconnect heard nothing: ${(cause as Error).message}`,
        )
      }
      wait = Math.min(wait === undefined ? (serverRetry ?? retryMin) : wait * 2, retryMax)
      await sleep(wait, abort.signal)
    }
  } finally {
    options.signal?.removeEventListener('abort', stop)
    abort.abort()
  }
}

function parse(data: string): unknown {
  try {
    return JSON.parse(data)
  } catch {
    throw new LockstepError(
      'INTERNAL',
      `the event stream sent what is not JSON: ${data.slice(0, 200)}`,
    )
  }
}

/** Waits `ms`, or less when `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    signal.addEventListener('abort', done, { once: true })
  })
}
