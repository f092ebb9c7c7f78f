/**
 * The OpenAPI 3.1 document of the API, built from the same schemas that check the requests.
 */
import { z } from 'zod'
import { orderOptionsSchema } from '../core/order.ts'
import { packetSchema } from '../core/packet.ts'
import { artifactSchema } from '../core/schema.ts'
import { heartbeatSchema, targetRegistrationSchema } from '../core/protocol.ts'

const json = (schema: z.ZodType) => {
  const out = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as Record<
    string,
    unknown
  >
  delete out.$schema
  return out
}

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` })
const body = (schema: object) => ({
  required: true,
  content: { 'application/json': { schema } },
})
const error = { description: 'An error: `{ error: { code, message, issues? } }`' }

interface Operation {
  summary: string
  role: string
  requestBody?: object
}

const operations: Record<string, Record<string, Operation>> = {
  '/healthz': { get: { summary: 'Liveness', role: 'none' } },
  '/metrics': { get: { summary: 'Prometheus metrics', role: 'none' } },
  '/v1/packets': {
    post: { summary: 'Store a packet', role: 'workbench', requestBody: body(ref('Packet')) },
  },
  '/v1/orders': {
    post: {
      summary:
        'Order an artifact, a packet, or a stored packet (YAML bodies take options as query parameters)',
      role: 'workbench',
      requestBody: body({
        type: 'object',
        properties: {
          artifact: ref('Artifact'),
          packet: ref('Packet'),
          packetRef: { type: 'string' },
          options: ref('OrderOptions'),
        },
      }),
    },
    get: { summary: 'List orders, newest first', role: 'workbench' },
  },
  '/v1/orders/{id}': { get: { summary: 'An order and its fulfilment', role: 'workbench' } },
  '/v1/orders/{id}/jobs': {
    get: { summary: 'An order’s jobs, with why each waiting job waits', role: 'workbench' },
  },
  '/v1/orders/{id}/cancel': { post: { summary: 'Cancel an order', role: 'workbench' } },
  '/v1/orders/{id}/products': {
    get: {
      summary: 'Where an order’s products are (when downloads are allowed)',
      role: 'workbench',
    },
  },
  '/v1/jobs/{id}': {
    get: { summary: 'A job, its attempts, inputs and why it waits', role: 'workbench' },
  },
  '/v1/jobs/{id}/cancel': { post: { summary: 'Cancel a job', role: 'workbench' } },
  '/v1/events': {
    get: { summary: 'Server-sent events, for one order (?order=ID) or all', role: 'workbench' },
  },
  '/v1/workers': {
    post: {
      summary: 'Register a worker',
      role: 'worker',
      requestBody: body(ref('TargetRegistration')),
    },
    get: { summary: 'Registered targets', role: 'workbench' },
  },
  '/v1/workers/{id}/heartbeat': {
    post: {
      summary: 'Results and cache changes in; up to `free` jobs out (a long poll with waitMs)',
      role: 'worker',
      requestBody: body(ref('Heartbeat')),
    },
  },
  '/v1/products/{id}': { get: { summary: 'Where a product is', role: 'worker' } },
}

export function openApiDocument(): object {
  const paths: Record<string, Record<string, object>> = {}
  for (const [path, methods] of Object.entries(operations)) {
    paths[path] = {}
    for (const [method, op] of Object.entries(methods)) {
      paths[path][method] = {
        summary: op.summary,
        ...(op.requestBody === undefined ? {} : { requestBody: op.requestBody }),
        ...(op.role === 'none' ? { security: [] } : { 'x-role': op.role }),
        responses: { '200': { description: 'OK' }, '4XX': error },
      }
    }
  }
  return {
    openapi: '3.1.0',
    info: { title: 'Lockstep', version: '1' },
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: {
        Packet: json(packetSchema),
        Artifact: json(artifactSchema),
        OrderOptions: json(orderOptionsSchema),
        TargetRegistration: json(targetRegistrationSchema),
        Heartbeat: json(heartbeatSchema),
      },
    },
    security: [{ bearer: [] }],
    paths,
  }
}
