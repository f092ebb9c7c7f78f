/**
 * Targets: workers register, heartbeat (a long poll) and leave; workbenches list them. A worker
 * is one kind of target; the routes say target, and keep the worker paths that agents already
 * in the field call.
 */
import { z } from 'zod'
import {
  capabilityKeySchema,
  heartbeatReplySchema,
  targetAttemptSchema,
  targetSchema,
  targetStatusSchema,
} from '../../core/api.ts'
import { LockstepError, ValidationError } from '../../core/errors.ts'
import { heartbeatSchema, targetRegistrationSchema } from '../../core/protocol.ts'
import type { HeartbeatInput } from '../../core/protocol.ts'
import { coversId } from '../auth.ts'
import { parseInput } from '../../core/schema.ts'
import { addRoute, checkedByTheService } from '../route.ts'
import type { RouteContext } from '../route.ts'
import { ownerScope } from './orders.ts'

const byId = z.strictObject({ id: z.string().min(1) })

/**
 * The query of `GET /v1/targets/:id/fulfilments`, checked by the handler once it knows the caller
 * may read the target: a worker reading another's target is refused whatever its query says.
 */
const fulfilmentsQuery = z.strictObject({
  /** The most attempts to list. @default 100 */
  limit: z.coerce.number().int().min(1).max(1000).optional(),
  /** Only the attempts in this state. */
  state: z.enum(['running', 'succeeded', 'failed', 'cancelled']).optional(),
})

/** The id a registration body names, when it names one; the service checks the rest. */
function registeredId({ body }: { body: unknown }): string | undefined {
  const id = typeof body === 'object' && body !== null ? (body as { id?: unknown }).id : undefined
  return typeof id === 'string' ? id : undefined
}

/** The id in the path: a worker heartbeats and leaves only as itself. */
const pathId = ({ params }: { params: { id: string } }): string => params.id

export function targetRoutes(ctx: RouteContext): void {
  const { app, callerOf, service, metrics, maxWaitMs, unitOf } = ctx

  addRoute(app, callerOf, {
    method: 'POST',
    url: ['/v1/targets', '/v1/workers'],
    summary: 'Register a target (a worker), or register it again after a restart or a loss',
    roles: ['worker'],
    actsAs: registeredId,
    body: targetRegistrationSchema,
    status: 201,
    response: targetSchema,
    handler: ({ body }) => {
      // Clusters are the server's own, declared in its targets file: no worker speaks for one.
      const id = registeredId({ body })
      const kind = (body as { kind?: unknown } | null)?.kind
      if (
        kind === 'kubernetes' ||
        (id !== undefined && service.target(id)?.kind === 'kubernetes')
      ) {
        throw new ValidationError([
          kind === 'kubernetes'
            ? {
                path: 'kind',
                message:
                  "kubernetes targets are declared in the server's targets file (--targets), not registered",
              }
            : {
                path: 'id',
                message: `'${id}' is a Kubernetes target of this server; choose another id`,
              },
        ])
      }
      return service.registerTarget(body)
    },
  })

  addRoute(app, callerOf, {
    method: 'POST',
    url: ['/v1/targets/:id/heartbeat', '/v1/workers/:id/heartbeat'],
    summary:
      'Results and cache changes in; up to `free` jobs and the attempts to stop out (a long poll with waitMs)',
    roles: ['worker'],
    actsAs: pathId,
    params: byId,
    body: heartbeatSchema,
    response: heartbeatReplySchema,
    handler: async ({ params, body, signal }) => {
      const input = body as HeartbeatInput | null
      if (input !== null && typeof input === 'object' && typeof input.waitMs === 'number') {
        input.waitMs = Math.min(input.waitMs, maxWaitMs)
      }
      const started = performance.now()
      const reply = await service.heartbeat(params.id, input ?? {}, signal)
      metrics.heartbeat((performance.now() - started) / 1000, params.id, reply.assignments)
      return reply
    },
  })

  addRoute(app, callerOf, {
    method: 'DELETE',
    url: ['/v1/targets/:id', '/v1/workers/:id'],
    summary: 'A target leaves; its running attempts fail with worker-lost and follow their policy',
    roles: ['worker'],
    actsAs: pathId,
    params: byId,
    status: 204,
    response: z.undefined(),
    handler: async ({ params }) => {
      await service.removeTarget(params.id)
      return undefined
    },
  })

  addRoute(app, callerOf, {
    method: 'POST',
    url: '/v1/targets/:id/forget',
    summary:
      'Forget a target that left or was lost: it is no longer a site of the projects it held (409 TARGET_LIVE while live)',
    roles: ['admin'],
    params: byId,
    status: 204,
    response: z.undefined(),
    handler: async ({ params }) => {
      await service.forgetTarget(params.id)
      return undefined
    },
  })

  addRoute(app, callerOf, {
    method: 'GET',
    url: '/v1/capabilities/key',
    summary:
      'The public key that checks the capabilities on assignment inputs: a worker serves a product to a peer presenting one',
    roles: ['worker'],
    response: capabilityKeySchema,
    handler: () => service.capabilityKey,
  })

  addRoute(app, callerOf, {
    method: 'GET',
    url: '/v1/targets/:id/fulfilments',
    summary:
      "The attempts on a target (its TargetFulfilments), newest first, with what runs each on a push target; a workbench sees its own orders' only, a worker its own target's",
    roles: ['workbench', 'viewer', 'worker'],
    params: byId,
    querystring: checkedByTheService(fulfilmentsQuery),
    response: z.array(targetAttemptSchema),
    handler: async ({ params, query: raw, caller }) => {
      // A worker reads its own target's attempts, all of them: it ran them. Refused before the
      // target is looked up, so another's id tells it nothing, not even whether it exists.
      if (caller.role === 'worker' && !coversId(caller.name, params.id)) {
        throw new LockstepError(
          'FORBIDDEN',
          `the worker token '${caller.name}' may read the attempts of its own target only, not '${params.id}'`,
        )
      }
      const query = parseInput(fulfilmentsQuery, raw, 'query')
      const attempts = await service.attemptsOnTarget(params.id, {
        limit: query.limit ?? 100,
        state: query.state,
        owner: caller.role === 'worker' ? undefined : ownerScope(caller),
      })
      return attempts.map((f) => {
        const unit = unitOf(params.id, f)
        return unit === undefined ? f : { ...f, unit: { name: unit.name, phase: unit.phase } }
      })
    },
  })

  addRoute(app, callerOf, {
    method: 'GET',
    url: ['/v1/targets', '/v1/workers'],
    summary: 'Registered targets, live or lost, with the attempts each runs',
    roles: ['workbench', 'worker', 'viewer'],
    response: z.array(targetStatusSchema),
    handler: () => service.targets(),
  })
}
