/**
 * The scheduler's HTTP API, version 1, on Fastify. Workbenches submit, follow and cancel;
 * workers register and heartbeat (a long poll). Every answer that reports a change comes after
 * the change is stored. `/openapi.json` is generated from the routes' own schemas; `/metrics`
 * speaks Prometheus; logs are pino's JSON lines.
 *
 * Every error is `{ error: { code, message, issues? } }` with the status of its code: bad input
 * is a 4xx that names the field, a body over the limit is a 413, a body that is neither JSON nor
 * YAML a 415; anything unexpected is a 500 with an id that the log carries too.
 */
import { randomUUID } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import fastifySwagger from '@fastify/swagger'
import Fastify, { LogController } from 'fastify'
import type { FastifyError, FastifyReply } from 'fastify'
import { MAX_DEPTH, readDocument, textNesting, treeProblem } from '../core/document.ts'
import { defaultLimits } from '../core/limits.ts'
import { LockstepError, StoreUnavailableError, ValidationError } from '../core/errors.ts'
import { isTransient, storeUnavailable } from '../store/faults.ts'
import type { SchedulerService } from '../service/service.ts'
import type { ProductSource, TargetDriver } from '../targets/target-driver.ts'
import { EventStreams } from './streams.ts'
import { Auth, publicCaller } from './auth.ts'
import type { TokenEntry } from './auth.ts'
import { Metrics } from './metrics.ts'
import { namedSchemas, openApiTransform, serializerCompiler, validatorCompiler } from './route.ts'
import type { RouteContext } from './route.ts'
import { eventRoutes } from './routes/events.ts'
import { metaRoutes } from './routes/meta.ts'
import { orderRoutes } from './routes/orders.ts'
import { statsRoutes } from './routes/stats.ts'
import { productRoutes } from './routes/products.ts'
import { targetRoutes } from './routes/targets.ts'
import { webRoutes } from './routes/web.ts'

/** Options of {@link startServer}. */
export interface ServerOptions {
  service: SchedulerService
  /** @default 7300 */
  port?: number
  /** @default '127.0.0.1' */
  host?: string
  /** No tokens: the server is open to anyone who can reach it. */
  tokens?: readonly TokenEntry[]
  /** The largest request body accepted; a larger one is refused with 413. @default 16 MiB */
  maxBodyBytes?: number
  /** Lets workbenches download an order's products (off by default, as the seed says). */
  allowDownload?: boolean
  /** The longest heartbeat long poll. @default 30000 */
  maxWaitMs?: number
  /** The most event streams one caller may hold open. @default 16 */
  maxStreamsPerCaller?: number
  /** Logs one JSON line per request and per error to standard error. @default false */
  log?: boolean
  /** In-process targets whose products the API serves at `/v1/targets/:id/products/:product`. */
  products?: readonly ProductSource[]
  /**
   * The push targets' drivers: `GET /v1/targets/:id/fulfilments` shows what runs each attempt
   * there when its driver says (`TargetDriver.unit`, a Pod's name and phase).
   */
  drivers?: readonly TargetDriver[]
  /**
   * The URL clients reach the server at, when not a loopback one (e.g. behind a proxy): its host
   * is accepted in the Host header besides the loopback names.
   */
  publicUrl?: string
}

/** A running server. */
export interface RunningServer {
  url: string
  port: number
  close(): Promise<void>
}

const YAML_TYPES = ['application/yaml', 'application/x-yaml', 'text/yaml']

export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const service = options.service
  const auth = new Auth(options.tokens ?? [])
  const app = Fastify({
    bodyLimit: options.maxBodyBytes ?? 16 * 1024 * 1024,
    logger: options.log === true ? { level: 'info', stream: process.stderr } : false,
    // Heartbeats are many and mostly long polls: the metrics count them, the log does not.
    logController: new LogController({
      disableRequestLogging: (request) => request.url.endsWith('/heartbeat'),
    }),
    keepAliveTimeout: 65_000,
    forceCloseConnections: true,
    genReqId: () => randomUUID(),
    frameworkErrors: (error, request, raw) => {
      const reply = raw as unknown as FastifyReply
      if (error.code === 'FST_ERR_BAD_URL') {
        const name = badParameter(patterns, request.url)
        void reply.code(400).send({
          error: {
            code: 'VALIDATION_FAILED',
            message: `${name === undefined ? '' : `${name}: `}is not a valid URL component`,
          },
        })
        return
      }
      const e = asLockstepError(error, options.maxBodyBytes ?? 16 * 1024 * 1024)
      void reply.code(e?.status ?? 400).send({
        error: { code: e?.code ?? 'VALIDATION_FAILED', message: error.message },
      })
    },
  })
  // DNS rebinding defence: a browser tricked into sending a request to this server sends the
  // attacker's name as Host. Only names that are this server's own are answered; the port is
  // known after listen, before any request arrives.
  let allowedHosts = new Set<string>()
  app.addHook('onRequest', (request, _reply, done) => {
    const host = (request.headers.host ?? '').toLowerCase()
    if (allowedHosts.has(host)) return done()
    done(
      new LockstepError(
        'HOST_NOT_ALLOWED',
        `the Host header '${host}' does not name this server; it answers to ${[...allowedHosts].join(', ')} (start it with --public-url URL to add the name clients use)`,
      ),
    )
  })
  app.setValidatorCompiler(validatorCompiler)
  app.setSerializerCompiler(serializerCompiler)

  // JSON as Fastify parses it (refusing prototype pollution), an empty body as `{}`; YAML as a
  // document whose errors name line and column. Anything else is refused with 415.
  const json = app.getDefaultJsonParser('error', 'error')
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    if (body === '') return done(null, {})
    void json(req, body as string, (error, value) => {
      if (error === null) {
        // JSON holds no alias, so only its depth can be a problem: counted on the text, without
        // walking the parsed tree, and walked only to name where a too deep body goes too deep.
        const tooDeep = textNesting(body as string, MAX_DEPTH) !== undefined
        const problem = tooDeep ? treeProblem(value) : undefined
        return problem === undefined ? done(null, value) : done(new ValidationError([problem]))
      }
      done(
        new ValidationError([
          { path: '', message: `the body is not valid JSON: ${error.message}` },
        ]),
        undefined,
      )
    })
  })
  app.addContentTypeParser(YAML_TYPES, { parseAs: 'string' }, (_req, body, done) => {
    try {
      done(null, readDocument(body as string, 'body'))
    } catch (e) {
      done(e as Error, undefined)
    }
  })

  app.setErrorHandler(async (error: FastifyError, request, reply) => {
    const e = asLockstepError(error, options.maxBodyBytes ?? 16 * 1024 * 1024)
    // A body not read (too large, or sent by a caller refused before it was parsed) is read and
    // dropped before the answer goes out: a socket closed with unread data is reset, and the
    // client would see a cut connection instead of the 4xx.
    await drain(request.raw, DRAIN_LIMIT)
    if (e !== undefined) {
      const body: Record<string, unknown> = { code: e.code, message: e.message }
      if (e instanceof ValidationError) body.issues = e.issues
      // The database fails: try again when the scheduler will have tried it again.
      if (e instanceof StoreUnavailableError)
        void reply.header('retry-after', String(e.retryAfterS))
      return reply.code(e.status).send({ error: body })
    }
    request.log.error({ err: error, id: request.id }, 'internal error')
    return reply.code(500).send({
      error: { code: 'INTERNAL', message: `internal error ${request.id}`, id: request.id },
    })
  })
  // A path segment that does not decode is refused before routing: say which parameter it is.
  const patterns: string[][] = []
  app.addHook('onRoute', (route) => void patterns.push(route.url.split('/')))
  app.setNotFoundHandler((request, reply) => {
    return reply.code(404).send({
      error: { code: 'NOT_FOUND', message: `no route ${request.method} ${request.url}` },
    })
  })

  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'Lockstep', version: '1' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    },
    transform: openApiTransform as never,
    transformObject: (document) => {
      const openapi = (document as { openapiObject: Record<string, unknown> }).openapiObject
      const components = openapi.components as Record<string, unknown>
      return { ...openapi, components: { ...components, schemas: namedSchemas() } } as never
    },
  })

  const metrics = new Metrics(service)
  const drivers = new Map((options.drivers ?? []).map((d) => [d.id, d]))
  const ctx: RouteContext = {
    app,
    service,
    allowDownload: options.allowDownload === true,
    maxWaitMs: options.maxWaitMs ?? 30_000,
    callerOf: (request, roles, actsAs) =>
      roles === 'public'
        ? publicCaller
        : auth.check(
            request.headers,
            roles,
            actsAs === undefined ? undefined : { id: actsAs, log: request.log },
          ),
    metrics,
    streams: new EventStreams(options.maxStreamsPerCaller ?? defaultLimits.maxStreamsPerCaller),
    sources: new Map((options.products ?? []).map((p) => [p.id, p])),
    unitOf: (targetId, attempt) => drivers.get(targetId)?.unit?.(attempt),
  }
  metaRoutes(ctx)
  orderRoutes(ctx)
  eventRoutes(ctx)
  targetRoutes(ctx)
  productRoutes(ctx)
  statsRoutes(ctx)
  webRoutes(ctx)

  const host = options.host ?? '127.0.0.1'
  await app.listen({ port: options.port ?? 7300, host })
  const address = app.server.address()
  const port = typeof address === 'object' && address !== null ? address.port : 0
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`
  allowedHosts = hostsOf(host, port, options.publicUrl)
  for (const source of ctx.sources.values()) {
    service.setTargetUrl(source.id, `${url}/v1/targets/${encodeURIComponent(source.id)}`)
  }
  app.log.info({ url, auth: auth.open ? 'open' : 'tokens' }, 'listening')
  return {
    url,
    port,
    async close() {
      ctx.streams.endAll()
      metrics.close()
      await app.close()
    },
  }
}

/**
 * The Host headers the server answers: the loopback names with its port, the address it listens
 * on when that is one address (not a wildcard), and the host of its public URL.
 */
function hostsOf(listen: string, port: number, publicUrl: string | undefined): Set<string> {
  const hosts = new Set([`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`])
  if (listen !== '0.0.0.0' && listen !== '::' && listen !== '') {
    hosts.add(`${listen.includes(':') ? `[${listen}]` : listen}:${port}`.toLowerCase())
  }
  if (publicUrl !== undefined) {
    const u = new URL(publicUrl)
    hosts.add(u.host.toLowerCase())
    if (u.port === '')
      hosts.add(`${u.hostname}:${u.protocol === 'https:' ? 443 : 80}`.toLowerCase())
  }
  return hosts
}

/** The most of a refused body read and dropped; past it the connection is cut. */
const DRAIN_LIMIT = 256 * 1024 * 1024

/** Reads a request body to its end, dropping it; destroys the request past `limit` bytes. */
function drain(req: IncomingMessage, limit: number): Promise<void> {
  if (req.readableEnded || req.destroyed) return Promise.resolve()
  return new Promise((resolve) => {
    let read = 0
    const done = () => {
      req.off('data', onData)
      resolve()
    }
    const onData = (chunk: Buffer) => {
      read += chunk.length
      if (read > limit) {
        req.destroy()
        done()
      }
    }
    req.on('data', onData)
    req.once('end', done)
    req.once('close', done)
    req.resume()
  })
}

/** The name of the path parameter whose segment does not decode, by the routes' patterns. */
function badParameter(patterns: readonly string[][], url: string): string | undefined {
  const path = url.split('?')[0]!.split('/')
  for (const pattern of patterns) {
    if (pattern.length !== path.length) continue
    let name: string | undefined
    const fits = pattern.every((segment, i) => {
      if (!segment.startsWith(':')) return segment === path[i]
      try {
        decodeURIComponent(path[i]!)
      } catch {
        name ??= segment.slice(1)
      }
      return true
    })
    if (fits && name !== undefined) return name
  }
  return undefined
}

/** Fastify's own errors as the catalogue's codes; undefined for an unexpected error. */
function asLockstepError(error: FastifyError, limit: number): LockstepError | undefined {
  if (error instanceof LockstepError) return error
  // A store fault that reached here past the service's guards is still the database failing.
  if (isTransient(error)) return storeUnavailable(error)
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new LockstepError('PAYLOAD_TOO_LARGE', `the body is larger than ${limit} bytes`)
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new LockstepError(
        'UNSUPPORTED_MEDIA_TYPE',
        'send the body as application/json or application/yaml',
      )
  }
  const status = error.statusCode ?? 500
  if (status >= 400 && status < 500) {
    return new ValidationError([{ path: '', message: error.message }])
  }
  return undefined
}
