/**
 * Server-sent events: every stored event (admins and viewers), or one order's until it ends; a
 * workbench follows only its own orders (another owner's is not found). An order's
 * stream carries a `fulfilment` event after each change of a job or of the order, and ends with
 * the stored event that ends the order, never before it.
 */
import { z } from 'zod'
import type { EngineEvent } from '../../core/engine/events.ts'
import { LockstepError } from '../../core/errors.ts'
import { STREAMED, addRoute } from '../route.ts'
import type { RouteContext } from '../route.ts'
import { ownerScope } from './orders.ts'

const ORDER_ENDED = /^order:(succeeded|failed|cancelled)$/

export function eventRoutes({ app, callerOf, service, streams }: RouteContext): void {
  addRoute(app, callerOf, {
    method: 'GET',
    url: '/v1/events',
    summary: 'Server-sent events, for one order (?order=ID) or for all (admins and viewers)',
    roles: ['workbench', 'viewer'],
    querystring: z.strictObject({ order: z.string().min(1).optional() }),
    response: {
      description: 'A stream of server-sent events, one per stored event',
      content: { 'text/event-stream': { schema: z.string() } },
    },
    handler: async ({ query, caller, reply, raw, res, signal }) => {
      const orderId = query.order
      const owner = ownerScope(caller)
      if (orderId !== undefined) await service.order(orderId, owner)
      else if (owner !== undefined) {
        throw new LockstepError(
          'FORBIDDEN',
          'only an admin or a viewer may follow every order; add ?order=ID',
        )
      }
      let ended = false
      // Counted before the answer starts: over the limit, the caller gets a 429 it can read.
      const release = streams.open(caller, raw.socket.remoteAddress ?? '', () => end())
      reply.hijack()
      res.writeHead(200, {
        'content-type': 'text/event-stream',
        'cache-control': 'no-cache',
        connection: 'keep-alive',
      })
      const write = (type: string, data: unknown) =>
        res.write(`event: ${type}\ndata: ${JSON.stringify(data)}\n\n`)
      res.write('retry: 1000\n\n')
      const end = () => {
        if (ended) return
        ended = true
        off()
        release()
        res.end()
      }
      const off = service.on((e: EngineEvent) => {
        const of =
          'orderId' in e ? e.orderId : e.type === 'order:submitted' ? e.order.id : undefined
        if (orderId !== undefined && of !== orderId) return
        write(
          e.type,
          e.type === 'order:submitted' ? { orderId: e.order.id, jobs: e.jobs.length } : e,
        )
        if (orderId !== undefined && (e.type.startsWith('job:') || e.type.startsWith('order:'))) {
          const last = ORDER_ENDED.test(e.type)
          void service.fulfilment(orderId).then((f) => {
            if (ended) return
            write('fulfilment', last ? { ...f, state: e.type.slice(6) } : f)
            if (last) end()
          })
        }
      })
      signal.addEventListener('abort', end, { once: true })
      if (orderId !== undefined) {
        const f = await service.fulfilment(orderId)
        write('fulfilment', f)
        if (f.state !== 'running') end()
      }
      return STREAMED
    },
  })
}
