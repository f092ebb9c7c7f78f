/**
 * How a route is declared: its method and path, who may call it, and zod schemas for what it
 * reads and what it answers. Fastify validates requests and serializes answers with those
 * schemas, and the OpenAPI document is generated from them, so a route cannot exist without a
 * schema and the document cannot drift from the server.
 *
 * Bodies that the service checks itself (packets, artifacts, registrations, heartbeats: each
 * with a `compile…()` step or a size guard that must run before the schema walks the input) are
 * documented by their schema and checked once, by the service.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type {
  FastifyInstance,
  FastifyReply,
  FastifyRequest,
  FastifySchemaCompiler,
  FastifySerializerCompiler,
} from 'fastify'
import { z } from 'zod'
import { errorSchema } from '../core/api.ts'
import { LockstepError, ValidationError } from '../core/errors.ts'
import type { EventStreams } from './streams.ts'
import { orderOptionsSchema } from '../core/order.ts'
import { packetSchema } from '../core/packet.ts'
import { heartbeatSchema, targetRegistrationSchema } from '../core/protocol.ts'
import { artifactSchema, stepSchema, toIssues } from '../core/schema.ts'
import type { SchedulerService } from '../service/service.ts'
import type { AttemptUnit, ProductSource } from '../targets/target-driver.ts'
import type { Caller, Role } from './auth.ts'
import type { Metrics } from './metrics.ts'

/** Schemas the service checks itself; the route only documents them. */
const checkedByService = new WeakSet<z.ZodType>([
  packetSchema,
  artifactSchema,
  heartbeatSchema,
  targetRegistrationSchema,
])

/**
 * Marks a schema as checked by the service (or by the route's handler, after a check that must
 * come first) rather than by the route's validation.
 */
export function checkedByTheService<T extends z.ZodType>(schema: T): T {
  checkedByService.add(schema)
  return schema
}

/** Validates a request part with its zod schema; bad input names the path of each bad field. */
export const validatorCompiler: FastifySchemaCompiler<z.ZodType> = ({ schema, httpPart }) => {
  if (checkedByService.has(schema)) return (data: unknown) => ({ value: data })
  const root =
    httpPart === 'querystring'
      ? 'query'
      : httpPart === 'params'
        ? 'path'
        : httpPart === 'headers'
          ? 'header'
          : ''
  return (data) => {
    const result = schema.safeParse(data)
    if (result.success) return { value: result.data }
    return { error: new ValidationError(toIssues(result.error.issues, root)) }
  }
}

/** Serializes an answer through its schema: an answer that does not fit is an internal error. */
export const serializerCompiler: FastifySerializerCompiler<z.ZodType> = ({
  schema,
  method,
  url,
}) => {
  return (data) => {
    const result = schema.safeParse(data)
    if (!result.success) {
      throw new Error(
        `the answer of ${method} ${url} does not fit its schema: ${result.error.issues
          .slice(0, 3)
          .map((i) => `${i.path.join('.')}: ${i.message}`)
          .join('; ')}`,
      )
    }
    return JSON.stringify(result.data)
  }
}

/**
 * Schemas the OpenAPI document names under `components.schemas`, in this order; routes refer to
 * them with `$ref`.
 */
const components: readonly (readonly [z.ZodType, string])[] = [
  [packetSchema, 'Packet'],
  [artifactSchema, 'Artifact'],
  // Named because it refers to itself (an iterate's steps): unnamed, its definition was lost
  // and the Artifact's steps pointed at nothing.
  [stepSchema, 'Step'],
  [orderOptionsSchema, 'OrderOptions'],
  [targetRegistrationSchema, 'TargetRegistration'],
  [heartbeatSchema, 'Heartbeat'],
]
const named = z.registry<{ id: string }>()
for (const [schema, id] of components) named.add(schema, { id })

/** The named schemas, as the document's `components.schemas`. */
export function namedSchemas(): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [schema, id] of components) {
    const converted = z.toJSONSchema(schema, {
      io: 'input',
      unrepresentable: 'any',
      metadata: named,
    }) as Record<string, unknown>
    const defs = converted.$defs as Record<string, unknown>
    out[id] = rewriteRefs(defs[id])
  }
  return out
}

/** A zod schema as the JSON Schema of an OpenAPI 3.1 document, named schemas as references. */
export function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): Record<string, unknown> {
  const out = z.toJSONSchema(schema, {
    io,
    unrepresentable: 'any',
    metadata: named,
  }) as Record<string, unknown>
  delete out.$schema
  delete out.$defs
  return rewriteRefs(out) as Record<string, unknown>
}

/** Points `#/$defs/X` at `#/components/schemas/X`. */
function rewriteRefs(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(rewriteRefs)
  if (typeof value !== 'object' || value === null) return value
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(value)) {
    out[k] =
      k === '$ref' && typeof v === 'string'
        ? v.replace('#/$defs/', '#/components/schemas/')
        : rewriteRefs(v)
  }
  return out
}

/** Turns a route's zod schemas into JSON Schemas for the OpenAPI document. */
export function openApiTransform({
  schema,
  url,
}: {
  schema: Record<string, unknown> | undefined
  url: string
}): { schema: Record<string, unknown>; url: string } {
  if (schema === undefined) return { schema: {}, url }
  const out: Record<string, unknown> = { ...schema }
  for (const part of ['params', 'querystring', 'headers'] as const) {
    if (schema[part] instanceof z.ZodType) out[part] = jsonSchema(schema[part], 'input')
  }
  const body = schema.body as z.ZodType | { content: Record<string, { schema: z.ZodType }> }
  if (body instanceof z.ZodType) out.body = jsonSchema(body, 'input')
  else if (body !== undefined) out.body = { content: contentOf(body.content, 'input') }
  const response = schema.response as Record<string, unknown> | undefined
  if (response !== undefined) {
    out.response = Object.fromEntries(
      Object.entries(response).map(([status, r]) => {
        if (r instanceof z.ZodType) return [status, jsonSchema(r, 'output')]
        const described = r as {
          description: string
          content?: Record<string, { schema: z.ZodType }>
        }
        return [
          status,
          described.content === undefined
            ? described
            : { ...described, content: contentOf(described.content, 'output') },
        ]
      }),
    )
  }
  return { schema: out, url }
}

function contentOf(
  content: Record<string, { schema: z.ZodType }>,
  io: 'input' | 'output',
): Record<string, { schema: Record<string, unknown> }> {
  return Object.fromEntries(
    Object.entries(content).map(([type, c]) => [type, { schema: jsonSchema(c.schema, io) }]),
  )
}

/** What every route module is given. */
export interface RouteContext {
  app: FastifyInstance
  service: SchedulerService
  callerOf: CallerOf
  metrics: Metrics
  /** Lets workbenches download products. */
  allowDownload: boolean
  /** The longest heartbeat long poll. */
  maxWaitMs: number
  /** The open event streams, counted per caller and ended on close. */
  streams: EventStreams
  /** In-process targets whose products the API serves. */
  sources: ReadonlyMap<string, ProductSource>
  /** What runs an attempt on a push target, when its driver says (a Pod and its phase). */
  unitOf: (targetId: string, attempt: { jobId: string; attempt: number }) => AttemptUnit | undefined
}

/** What a handler sees of a request. */
export interface RouteRequest<B, Q, P> {
  body: B
  query: Q
  params: P
  /** Who is calling; checked against the route's roles before the handler runs. */
  caller: Caller
  headers: IncomingMessage['headers']
  /** Aborts when the client goes away. */
  signal: AbortSignal
  raw: IncomingMessage
  /** The raw response, for routes that stream. */
  res: ServerResponse
  reply: FastifyReply
}

/** An answer that does not fit a schema: a stream the handler writes itself. */
export const STREAMED = Symbol('streamed')

/** A route of the API. */
export interface RouteSpec<B, Q, P, R> {
  method: 'GET' | 'POST' | 'DELETE'
  /** The path; more than one for a route kept under an older name too. */
  url: string | readonly string[]
  summary: string
  /** Who may call it; `public` needs no token. */
  roles: readonly Role[] | 'public'
  body?: z.ZodType<B> | { content: Record<string, { schema: z.ZodType }> }
  querystring?: z.ZodType<Q>
  params?: z.ZodType<P>
  /**
   * Headers the route reads, as a loose object (a request carries others): checked like the
   * query, and documented as header parameters. The handler reads them from `headers`.
   */
  headers?: z.ZodType
  /**
   * The target id the route acts as, for routes a worker calls about itself (register,
   * heartbeat, leave): the caller's token must cover it (see `Auth.check`). Read from the raw
   * input before the handler runs; undefined when the input names none, which the handler's
   * own check then refuses.
   */
  actsAs?: (input: { body: unknown; params: P }) => string | undefined
  /** The status of a success. @default 200 */
  status?: number
  /** What a success answers: a schema, or a described stream. */
  response: z.ZodType<R> | { description: string; content: Record<string, { schema: z.ZodType }> }
  handler(req: RouteRequest<B, Q, P>): Promise<R | typeof STREAMED> | R | typeof STREAMED
}

/** Who called, as the auth hook found it; `actsAs` is the target id the route acts as. */
export type CallerOf = (
  request: FastifyRequest,
  roles: readonly Role[] | 'public',
  actsAs?: string,
) => Caller

/** The caller of each request in flight, as its route's `onRequest` hook found it. */
const callers = new WeakMap<FastifyRequest, Caller>()

/** Adds a route to the app, under each of its paths. */
export function addRoute<B = unknown, Q = unknown, P = unknown, R = unknown>(
  app: FastifyInstance,
  callerOf: CallerOf,
  spec: RouteSpec<B, Q, P, R>,
): void {
  const status = spec.status ?? 200
  const urls = typeof spec.url === 'string' ? [spec.url] : spec.url
  urls.forEach((url, i) => {
    app.route({
      method: spec.method,
      url,
      schema: {
        summary: spec.summary,
        ...(i > 0 ? { deprecated: true, description: `An older name of ${urls[0]}.` } : {}),
        ...(spec.roles === 'public'
          ? { security: [] }
          : { 'x-roles': spec.roles, security: [{ bearer: [] }] }),
        ...(spec.body === undefined ? {} : { body: spec.body }),
        ...(spec.querystring === undefined ? {} : { querystring: spec.querystring }),
        ...(spec.params === undefined ? {} : { params: spec.params }),
        ...(spec.headers === undefined ? {} : { headers: spec.headers }),
        response: { [status]: spec.response, '4xx': errorSchema, '5xx': errorSchema },
      },
      // Who calls is settled before the body is read or checked: a caller without the right
      // token learns nothing from validation, and its body is never parsed.
      onRequest: (request, _reply, done) => {
        try {
          callers.set(request, callerOf(request, spec.roles))
          done()
        } catch (e) {
          done(e as Error)
        }
      },
      handler: async (request, reply) => {
        // A route that acts as a target learns its id from the parsed body or path: the token
        // is checked once more against that id.
        const caller =
          spec.actsAs === undefined
            ? callers.get(request)!
            : callerOf(
                request,
                spec.roles,
                spec.actsAs({ body: request.body, params: request.params as P }),
              )
        let controller: AbortController | undefined
        const out = await spec.handler({
          body: request.body as B,
          query: request.query as Q,
          params: request.params as P,
          caller,
          headers: request.headers,
          // Made for the handlers that ask (long polls, streams): most never do.
          get signal() {
            if (controller === undefined) {
              const made = new AbortController()
              controller = made
              // Aborts when the client goes away before the answer is complete.
              reply.raw.once('close', () => {
                if (!reply.raw.writableFinished) made.abort()
              })
            }
            return controller.signal
          },
          raw: request.raw,
          res: reply.raw,
          reply,
        })
        if (out === STREAMED) return reply
        return reply.code(status).send(out)
      },
    })
  })
}

/** Throws when a path parameter is missing; fastify guarantees them, the types do not. */
export function param(value: string | undefined, name: string): string {
  if (value === undefined || value === '') {
    throw new LockstepError('VALIDATION_FAILED', `the path has no ${name}`)
  }
  return value
}
