/**
 * Products: where one is, an order's products, and their bytes. The scheduler relays a product
 * for workers that cannot reach the peer holding it, and for downloads when the server allows
 * them. Workbenches and admins download only from a server started with `allowDownload`, on
 * every route that sends bytes, and workbenches only the products of their own orders' jobs;
 * workers always may.
 */
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { z } from 'zod'
import { orderProductsSchema, productHoldersSchema } from '../../core/api.ts'
import { LockstepError } from '../../core/errors.ts'
import { leavesProduct, productOf } from '../../core/model.ts'
import { isWorkerUrl } from '../../core/protocol.ts'
import { openCaller } from '../auth.ts'
import type { Caller } from '../auth.ts'
import { STREAMED, addRoute } from '../route.ts'
import type { RouteContext } from '../route.ts'
import { ownerScope } from './orders.ts'

const bytes = {
  description: 'The product as an archive',
  content: { 'application/octet-stream': { schema: z.string() } },
}

export function productRoutes(ctx: RouteContext): void {
  const { app, callerOf, service, sources } = ctx
  const disabled = () =>
    new LockstepError(
      'DOWNLOAD_DISABLED',
      'this server does not allow downloading products; start it with --allow-download',
    )
  /**
   * Listing an order's products is how a download starts (`lockstep download`): refused to
   * every caller but a worker, an admin too, unless the server allows downloads.
   */
  const mayList = (caller: Caller): void => {
    if (caller.role !== 'worker' && !ctx.allowDownload) throw disabled()
  }
  /**
   * A product's bytes: workers fetch them whatever the setting (that is how inputs move between
   * jobs); so does every caller of a server without tokens, which cannot tell its workers from
   * anyone else (anyone there could register as a worker and be handed them). Every other
   * caller, an admin too, only from a server that allows downloads. Viewers never reach these
   * routes.
   */
  const mayDownload = (caller: Caller): void => {
    if (caller.role !== 'worker' && caller !== openCaller && !ctx.allowDownload) throw disabled()
  }
  /**
   * A workbench reaches only the products its own orders' jobs made; another owner's is not
   * found, as one nobody holds. A product made under a cache key is shared by every order whose
   * job has that key, so it has no one owner and is not checked here.
   */
  const mayFetch = async (caller: Caller, productId: string): Promise<void> => {
    const owner = caller.role === 'worker' ? undefined : ownerScope(caller)
    if (owner === undefined || productId.startsWith('cache:')) return
    try {
      await service.job(productId, owner)
    } catch (e) {
      if (e instanceof LockstepError && e.code === 'JOB_NOT_FOUND') {
        throw new LockstepError('PRODUCT_NOT_FOUND', `no live target holds product ${productId}`)
      }
      throw e
    }
  }

  addRoute(app, callerOf, {
    method: 'GET',
    url: '/v1/orders/:id/products',
    summary: 'Where an order’s products are (when downloads are allowed)',
    roles: ['workbench'],
    params: z.strictObject({ id: z.string().min(1) }),
    response: orderProductsSchema,
    handler: async ({ params, caller }) => {
      mayList(caller)
      const order = await service.order(params.id, ownerScope(caller))
      const jobs = await service.jobs(order.id)
      return jobs
        .filter((j) => j.state === 'succeeded' && leavesProduct(j))
        .map((j) => ({
          jobId: j.id,
          productId: productOf(j),
          name: j.name,
          holders: service.holders(productOf(j)),
        }))
    },
  })

  addRoute(app, callerOf, {
    method: 'GET',
    url: '/v1/products/:id',
    summary: 'Where a product is: every live target holding it, with its URL',
    roles: ['worker', 'workbench'],
    params: z.strictObject({ id: z.string().min(1) }),
    response: productHoldersSchema,
    handler: async ({ params, caller }) => {
      await mayFetch(caller, params.id)
      const holders = service.holders(params.id)
      if (holders.length === 0) {
        throw new LockstepError('PRODUCT_NOT_FOUND', `no live target holds product ${params.id}`)
      }
      return { productId: params.id, holders }
    },
  })

  addRoute(app, callerOf, {
    method: 'GET',
    url: '/v1/targets/:target/products/:id',
    summary: 'A product kept by a target inside the scheduler (the initiator)',
    roles: ['worker', 'workbench'],
    params: z.strictObject({ target: z.string().min(1), id: z.string().min(1) }),
    response: bytes,
    handler: async ({ params, caller, reply, res }) => {
      mayDownload(caller)
      await mayFetch(caller, params.id)
      const source = sources.get(params.target)
      if (source === undefined) {
        throw new LockstepError(
          'PRODUCT_NOT_FOUND',
          `target ${params.target} keeps no products in the scheduler`,
        )
      }
      reply.hijack()
      await source.send(params.id, res)
      return STREAMED
    },
  })

  addRoute(app, callerOf, {
    method: 'GET',
    url: '/v1/products/:id/content',
    summary: 'A product’s bytes, relayed by the scheduler from a target that holds it',
    roles: ['worker', 'workbench'],
    params: z.strictObject({ id: z.string().min(1) }),
    response: bytes,
    handler: async ({ params, caller, reply, res, signal }) => {
      mayDownload(caller)
      await mayFetch(caller, params.id)
      const id = params.id
      for (const source of sources.values()) {
        if (source.holds(id)) {
          reply.hijack()
          await source.send(id, res)
          return STREAMED
        }
      }
      // The relay fetches only from a holder's URL as the holder registered it, checked again
      // here (a row stored before URLs were checked may hold anything), and follows no
      // redirect: the worker token it sends goes to that URL and nowhere else. What a holder
      // answers on failure is not repeated: only its status, which the caller may see.
      const errors: string[] = []
      for (const holder of service.holders(id)) {
        if (holder.url === undefined || sources.has(holder.target)) continue
        if (!isWorkerUrl(holder.url)) {
          errors.push(`${holder.target}: registered no usable URL`)
          continue
        }
        const base = new URL(holder.url)
        const at = `${base.origin}${base.pathname.replace(/\/+$/, '')}/products/${encodeURIComponent(id)}`
        let upstream: Response
        try {
          upstream = await fetch(at, {
            headers:
              // The holder is shown a capability for this one product, signed for the scheduler:
              // it holds whatever token its own is, and no token goes anywhere it was not given.
              { authorization: `Capability ${service.capability(id, service.initiator)}` },
            redirect: 'manual',
            signal,
          })
        } catch {
          errors.push(`${holder.target}: unreachable`)
          continue
        }
        if (upstream.status !== 200 || upstream.body === null) {
          await upstream.body?.cancel().catch(() => {})
          errors.push(`${holder.target}: HTTP ${upstream.status}`)
          continue
        }
        reply.hijack()
        res.writeHead(200, { 'content-type': 'application/octet-stream' })
        // Piped, so that the holder is read no faster than the caller reads (the relay holds a
        // few chunks, never a product), and a caller that goes away ends the fetch upstream.
        await pipeline(Readable.fromWeb(upstream.body as never), res).catch(() => {
          // The status is sent: all that is left is to cut the response short.
          res.destroy()
        })
        return STREAMED
      }
      throw new LockstepError(
        'PRODUCT_NOT_FOUND',
        `no live target serves product ${id}${errors.length > 0 ? ` (${errors.join('; ')})` : ''}`,
      )
    },
  })
}
