/**
 * Orders, packets and jobs: submit, read, cancel. A workbench reads and cancels only its own
 * orders and their jobs; a viewer reads every order and changes none; an admin does everything.
 *
 * Invariant: another owner's order or job answers 404, exactly as one that does not exist (never
 * 403, which would tell that it exists and whose it is). Every route that reads or changes an
 * order or a job scopes its read with {@link ownerScope}; the read model does the check.
 */
import { z } from 'zod'
import {
  jobDetailSchema,
  jobSchema,
  listedJobSchema,
  lockSchema,
  orderDetailSchema,
  orderFulfilmentSchema,
  packetCreatedSchema,
} from '../../core/api.ts'
import { classify } from '../../core/document.ts'
import { LockstepError, ValidationError } from '../../core/errors.ts'
import { orderOptionsSchema } from '../../core/order.ts'
import type { OrderState } from '../../core/model.ts'
import type { OrderOptions } from '../../core/order.ts'
import { packetSchema } from '../../core/packet.ts'
import { artifactSchema, parseInput } from '../../core/schema.ts'
import type { Caller } from '../auth.ts'
import { decodeCursor, encodeCursor } from '../order-cursor.ts'
import { addRoute, checkedByTheService } from '../route.ts'
import type { RouteContext } from '../route.ts'

/** What `POST /v1/orders` takes as JSON: exactly one of artifact, packet or packetRef. */
const submitSchema = z.strictObject({
  /** An artifact to bind and order. */
  artifact: z.unknown().optional(),
  /** A packet to store and order once. */
  packet: z.unknown().optional(),
  /** A stored packet to order, by id or name. */
  packetRef: z.string().optional(),
  options: orderOptionsSchema.optional(),
})

/** The same, as the OpenAPI document shows it: the artifact and the packet with their schemas. */
const submitDocumented = checkedByTheService(
  z.strictObject({
    artifact: artifactSchema.optional(),
    packet: packetSchema.optional(),
    packetRef: z.string().optional(),
    options: orderOptionsSchema.optional(),
  }),
)

/** A YAML document: an artifact or a packet. */
const documentSchema = checkedByTheService(z.union([artifactSchema, packetSchema]))

/** Order options given as query parameters next to a YAML body. */
const optionsQuery = z.strictObject({
  priority: z.coerce.number().int().min(1).max(100).optional(),
  owner: z.string().optional(),
  minSites: z.coerce.number().int().min(1).optional(),
  waitForSitesMs: z.coerce.number().int().min(0).optional(),
})

const byId = z.strictObject({ id: z.string().min(1) })

const orderStates = ['running', 'succeeded', 'failed', 'cancelled'] as const
const oneState = orderStates.join('|')

/** What `GET /v1/orders` filters, sorts and pages by. */
const orderListQuery = z.strictObject({
  /** Only orders in these states: repeated, or comma-separated. */
  state: z
    .union([
      z.string().regex(new RegExp(`^(${oneState})(,(${oneState}))*$`)),
      z.array(z.enum(orderStates)),
    ])
    .optional()
    .describe(
      'only orders in these states (running, succeeded, failed, cancelled): repeated or comma-separated',
    ),
  owner: z
    .string()
    .min(1)
    .optional()
    .describe("only this owner's orders (admins and viewers; a workbench sees only its own)"),
  q: z
    .string()
    .min(1)
    .max(200)
    .optional()
    .describe(
      'text in the packet name or artifact project (any case), or the start of the order id',
    ),
  sort: z
    .enum(['created', 'priority'])
    .optional()
    .describe('created: newest first (the default); priority: highest first, then newest'),
  limit: z.coerce
    .number()
    .int()
    .min(1)
    .max(1000)
    .optional()
    .describe('at most this many (default 100)'),
  cursor: z
    .string()
    .max(200)
    .optional()
    .describe('where the page starts: the Lockstep-Next-Cursor header of the page before'),
})

/**
 * The owner whose orders a caller reaches: admins and viewers reach every order (undefined), any
 * other caller only those owned by its name. Which routes change anything is the routes' roles:
 * a viewer never reaches a change, so a read scope is also the change scope.
 */
export function ownerScope(caller: Caller): string | undefined {
  return caller.role === 'admin' || caller.role === 'viewer' ? undefined : caller.name
}

export function orderRoutes({ app, callerOf, service }: RouteContext): void {
  addRoute(app, callerOf, {
    method: 'POST',
    url: '/v1/packets',
    summary: 'Store a packet',
    roles: ['workbench'],
    body: {
      content: {
        'application/json': { schema: packetSchema },
        'application/yaml': { schema: packetSchema },
      },
    },
    status: 201,
    response: packetCreatedSchema,
    handler: async ({ body, caller }) => {
      const record = await service.createPacket(body, caller.name)
      return { id: record.id, name: record.name, createdAt: record.createdAt }
    },
  })

  addRoute(app, callerOf, {
    method: 'POST',
    url: '/v1/orders',
    summary:
      'Order an artifact, a packet, or a stored packet (a YAML body takes its options as query parameters)',
    roles: ['workbench'],
    body: {
      content: {
        'application/json': { schema: submitDocumented },
        'application/yaml': { schema: documentSchema },
      },
    },
    querystring: optionsQuery,
    status: 201,
    response: orderFulfilmentSchema,
    handler: async ({ body, query, caller, headers }) => {
      const yaml = /yaml/i.test(headers['content-type'] ?? '')
      const submission = yaml
        ? { ...submissionOf(body), options: query }
        : parseInput(submitSchema, body)
      const given = [submission.artifact, submission.packet, submission.packetRef].filter(
        (x) => x !== undefined,
      )
      if (given.length !== 1) {
        throw new ValidationError([
          { path: '', message: 'give exactly one of artifact, packet or packetRef' },
        ])
      }
      const orderOptions: OrderOptions = { ...submission.options }
      if (orderOptions.owner !== undefined && orderOptions.owner !== caller.name) {
        if (caller.role !== 'admin') {
          throw new LockstepError(
            'FORBIDDEN',
            'only an admin may submit on behalf of another owner',
          )
        }
      } else orderOptions.owner = caller.name
      if (submission.artifact !== undefined) {
        return service.submitArtifact(submission.artifact, orderOptions, caller.name)
      }
      if (submission.packet !== undefined) {
        return service.submitPacket(submission.packet, orderOptions, caller.name)
      }
      // A name reaches the caller's own packets; an admin reaches any, also as `owner/name`.
      const access = caller.role === 'admin' ? 'every-owner' : 'own'
      return service.orderPacket(submission.packetRef!, orderOptions, caller.name, access)
    },
  })

  addRoute(app, callerOf, {
    method: 'GET',
    url: '/v1/orders',
    summary:
      'List the caller’s orders (every order for admins and viewers), filtered, sorted and paged; headers Lockstep-Total (orders matching) and Lockstep-Next-Cursor (absent on the last page)',
    roles: ['workbench', 'viewer'],
    querystring: orderListQuery,
    response: z.array(orderFulfilmentSchema),
    handler: async ({ query, caller, reply }) => {
      const sort = query.sort ?? 'created'
      const scope = ownerScope(caller)
      const states =
        query.state === undefined
          ? undefined
          : [...new Set(typeof query.state === 'string' ? query.state.split(',') : query.state)]
      // A workbench asking for another owner's orders gets none: it reaches only its own.
      const page =
        scope !== undefined && query.owner !== undefined && query.owner !== scope
          ? { orders: [], total: 0, next: undefined }
          : await service.findOrders({
              states: states as OrderState[] | undefined,
              owner: scope ?? query.owner,
              text: query.q,
              sort,
              limit: query.limit ?? 100,
              after: query.cursor === undefined ? undefined : decodeCursor(query.cursor, sort),
            })
      reply.header('Lockstep-Total', String(page.total))
      if (page.next !== undefined)
        reply.header('Lockstep-Next-Cursor', encodeCursor(sort, page.next))
      return page.orders
    },
  })

  addRoute(app, callerOf, {
    method: 'GET',
    url: '/v1/orders/:id',
    summary: 'An order and its fulfilment',
    roles: ['workbench', 'viewer'],
    params: byId,
    response: orderDetailSchema,
    handler: async ({ params, caller }) => {
      const order = await service.order(params.id, ownerScope(caller))
      return { order, fulfilment: await service.fulfilment(order.id) }
    },
  })

  addRoute(app, callerOf, {
    method: 'GET',
    url: '/v1/orders/:id/jobs',
    summary: 'An order’s jobs, with why each waiting job waits',
    roles: ['workbench', 'viewer'],
    params: byId,
    response: z.array(listedJobSchema),
    handler: async ({ params, caller }) =>
      service.jobs((await service.order(params.id, ownerScope(caller))).id),
  })

  addRoute(app, callerOf, {
    method: 'GET',
    url: '/v1/orders/:id/locks',
    summary: 'An order’s locks: each says which job’s success lets which job start',
    roles: ['workbench', 'viewer'],
    params: byId,
    response: z.array(lockSchema),
    handler: async ({ params, caller }) =>
      service.locks((await service.order(params.id, ownerScope(caller))).id),
  })

  addRoute(app, callerOf, {
    method: 'GET',
    url: '/v1/jobs/:id',
    summary: 'A job, its attempts, its inputs and why it waits',
    roles: ['workbench', 'viewer'],
    params: byId,
    response: jobDetailSchema,
    handler: ({ params, caller }) => service.jobDetail(params.id, ownerScope(caller)),
  })

  addRoute(app, callerOf, {
    method: 'POST',
    url: '/v1/orders/:id/cancel',
    summary: 'Cancel an order',
    roles: ['workbench'],
    params: byId,
    response: orderFulfilmentSchema,
    handler: async ({ params, caller }) => {
      const order = await service.order(params.id, ownerScope(caller))
      return service.cancelOrder(order.id, `cancelled by ${caller.name}`)
    },
  })

  addRoute(app, callerOf, {
    method: 'POST',
    url: '/v1/jobs/:id/cancel',
    summary: 'Cancel a job',
    roles: ['workbench'],
    params: byId,
    response: jobSchema,
    handler: async ({ params, caller }) => {
      const job = await service.job(params.id, ownerScope(caller))
      return service.cancelJob(job.id, `cancelled by ${caller.name}`)
    },
  })
}

/** What a YAML body holds, as the fields of a submission. */
function submissionOf(data: unknown): {
  artifact?: unknown
  packet?: unknown
  packetRef?: string
  options?: OrderOptions
} {
  return classify(data).kind === 'artifact' ? { artifact: data } : { packet: data }
}
