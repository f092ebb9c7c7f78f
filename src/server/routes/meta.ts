/** Health, metrics and the OpenAPI document: the routes that need no token. */
import { z } from 'zod'
import { STREAMED, addRoute } from '../route.ts'
import type { RouteContext } from '../route.ts'

export function metaRoutes({ app, callerOf, metrics, service }: RouteContext): void {
  addRoute(app, callerOf, {
    method: 'GET',
    url: '/healthz',
    summary: 'Liveness: the process answers (it stays 200 while the database fails)',
    roles: 'public',
    response: z.object({ ok: z.boolean() }),
    handler: () => ({ ok: true }),
  })

  addRoute(app, callerOf, {
    method: 'GET',
    url: '/readyz',
    summary:
      'Readiness: 200 when writes are taken, 503 with Retry-After while the database fails or too many changes wait for it',
    roles: 'public',
    response: {
      description: 'Whether the store takes writes, why not, and how many changes wait for it',
      content: {
        'application/json': {
          schema: z.object({
            ready: z.boolean(),
            fault: z.string().optional(),
            pending: z.number(),
            retryAfterS: z.number().optional(),
          }),
        },
      },
    },
    handler: async ({ reply }) => {
      const status = service.storeStatus()
      // Not awaited: a reply is thenable, and resolves only once sent.
      if (!status.ready) void reply.code(503).header('retry-after', String(status.retryAfterS))
      await reply.header('content-type', 'application/json').send(JSON.stringify(status))
      return STREAMED
    },
  })

  addRoute(app, callerOf, {
    method: 'GET',
    url: '/metrics',
    summary: 'Prometheus metrics',
    roles: 'public',
    response: {
      description: 'The Prometheus text exposition format',
      content: { 'text/plain': { schema: z.string() } },
    },
    handler: async ({ reply }) => {
      const text = await metrics.render()
      await reply.header('content-type', metrics.contentType).send(text)
      return STREAMED
    },
  })

  addRoute(app, callerOf, {
    method: 'GET',
    url: '/openapi.json',
    summary: 'This API, as an OpenAPI 3.1 document generated from its routes’ schemas',
    roles: 'public',
    response: {
      description: 'An OpenAPI 3.1 document',
      content: { 'application/json': { schema: z.record(z.string(), z.unknown()) } },
    },
    handler: async ({ reply }) => {
      await reply.header('content-type', 'application/json').send(JSON.stringify(app.swagger()))
      return STREAMED
    },
  })
}
