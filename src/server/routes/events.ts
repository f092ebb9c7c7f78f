/**
 * Server-sent events: every stored event (admins and viewers), or one order's until it ends; a
 * workbench follows only its own orders (another owner's is not found). Each stored event goes
 * out in the log's form (`fromLogRow`) with its `seq` as the SSE `id`. An order's stream carries
 * a `fulfilment` event (no id) after each change of a job or of the order, and ends with the
 * stored event that ends the order, never before it.
 *
 * Resuming: a request with `Last-Event-ID: N` (or `?after=N`) first gets the stored events after
 * N (the order's, for an order's stream), then the live ones. The stream listens before it reads
 * the log and drops a live event the replay already sent, so the client hears every event once,
 * in the log's order: none lost between the replay and the live part, none twice.
 */
import { z } from 'zod'
import { fromLogRow } from '../../core/event-log.ts'
import type { StreamedEvent } from '../../core/event-log.ts'
import { LockstepError } from '../../core/errors.ts'
import type { OrderFulfilment } from '../../core/engine/fulfilment.ts'
import type { EventRow } from '../../store/store.ts'
import { STREAMED, addRoute } from '../route.ts'
import type { RouteContext } from '../route.ts'
import { ownerScope } from './orders.ts'

const ORDER_ENDED = /^order:(succeeded|failed|cancelled)$/

/** Stored events read from the log per query while a stream replays. */
const REPLAY_PAGE = 500

const position = z.coerce
  .number()
  .int()
  .min(0)
  .max(Number.MAX_SAFE_INTEGER)
  .describe('the `seq` of the last event heard: the stream replays the stored events after it')

export function eventRoutes({ app, callerOf, service, streams }: RouteContext): void {
  addRoute(app, callerOf, {
    method: 'GET',
    url: '/v1/events',
    summary:
      'Server-sent events, for one order (?order=ID) or for all (admins and viewers); resumes after Last-Event-ID (or ?after=N)',
    roles: ['workbench', 'viewer'],
    querystring: z.strictObject({
      order: z.string().min(1).optional(),
      after: position.optional(),
    }),
    headers: z.looseObject({ 'last-event-id': position.optional() }),
    response: {
      description:
        'A stream of server-sent events, one per stored event (its id is the event’s seq), and for an order `fulfilment` events',
      content: { 'text/event-stream': { schema: z.string() } },
    },
    handler: async ({ query, headers, caller, reply, raw, res, signal }) => {
      const orderId = query.order
      const owner = ownerScope(caller)
      if (orderId !== undefined) await service.order(orderId, owner)
      else if (owner !== undefined) {
        throw new LockstepError(
          'FORBIDDEN',
          'only an admin or a viewer may follow every order; add ?order=ID',
        )
      }
      const header = (headers as { 'last-event-id'?: number })['last-event-id']
      const after = header ?? query.after
      let ended = false
      // Counted before the answer starts: over the limit, the caller gets a 429 it can read.
      const release = streams.open(caller, raw.socket.remoteAddress ?? '', () => end())
      reply.hijack()
      res.writeHead(200, {
        'content-type': 'text/event-stream',
        'cache-control': 'no-cache',
        connection: 'keep-alive',
      })
      res.write('retry: 1000\n\n')
      const end = () => {
        if (ended) return
        ended = true
        off()
        release()
        res.end()
      }
      /** The seq of the last stored event sent: nothing at or before it goes out again. */
      let sent = after ?? 0
      /** The event that ends the order went out: its fulfilment ends the stream. */
      let endingSent = false
      const writeFulfilment = (f: OrderFulfilment) => {
        if (!ended) res.write(`event: fulfilment\ndata: ${JSON.stringify(f)}\n\n`)
      }
      /** Sends a stored event once; for an order, the fulfilment after it, the last one ending the stream. */
      const send = (e: StreamedEvent, live: boolean) => {
        if (ended || e.seq <= sent) return
        sent = e.seq
        res.write(`id: ${e.seq}\nevent: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`)
        if (orderId === undefined) return
        if (ORDER_ENDED.test(e.type)) {
          endingSent = true
          // The order's end is the stream's end: nothing of it follows its ending event.
          void service.fulfilment(orderId).then((f) => {
            writeFulfilment({ ...f, state: e.type.slice(6) as OrderFulfilment['state'] })
            end()
          })
          return
        }
        if (live && (e.type.startsWith('job:') || e.type.startsWith('order:'))) {
          void service.fulfilment(orderId).then(writeFulfilment)
        }
      }
      // While the log is replayed, live events wait here; afterwards they go out as they come.
      let waiting: EventRow[] | undefined = after === undefined ? undefined : []
      const off = service.on((_e, row) => {
        if (orderId !== undefined && row.orderId !== orderId) return
        if (waiting !== undefined) waiting.push(row)
        else send(fromLogRow(row), true)
      })
      signal.addEventListener('abort', end, { once: true })
      try {
        if (waiting !== undefined) {
          // An event recorded before the stream listened, and stored after, reaches neither the
          // listener nor a read made before its commit: wait for it, then read.
          await service.durable()
          for (let page = REPLAY_PAGE; page === REPLAY_PAGE && !ended;) {
            const rows = await service.storedEvents(sent, REPLAY_PAGE, orderId)
            page = rows.length
            for (const row of rows) send(fromLogRow(row), false)
          }
          for (const row of waiting) send(fromLogRow(row), true)
          waiting = undefined
        }
        if (orderId !== undefined && !ended) {
          const f = await service.fulfilment(orderId)
          // The engine knows an order ended before its ending event is stored: once it is, the
          // event has gone out (and ends the stream), unless the client heard it before.
          if (f.state !== 'running') await service.durable()
          if (!endingSent) {
            writeFulfilment(f)
            if (f.state !== 'running') end()
          }
        }
      } catch {
        // The service closed or its store fails: the client resumes from the last id it heard.
        end()
      }
      return STREAMED
    },
  })
}
