/**
 * The small HTTP layer the API stands on: routing by method and path pattern, JSON bodies with a
 * size limit, and one error format. Every LockstepError becomes its status with its code and
 * message; anything else is a 500 with an id that the log carries too.
 */
import { randomUUID } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { LockstepError, ValidationError } from '../core/errors.ts'

/** A request as a handler sees it. */
export interface Request {
  method: string
  path: string
  params: Record<string, string>
  query: URLSearchParams
  headers: IncomingMessage['headers']
  /** The raw body, read on demand within the size limit. */
  text(): Promise<string>
  /** The body parsed as JSON. */
  json(): Promise<unknown>
  /** Aborts when the client goes away. */
  signal: AbortSignal
  raw: IncomingMessage
  res: ServerResponse
}

/** What a handler returns: a JSON body with a status, or nothing when it wrote the response itself. */
export type Reply = { status?: number; body: unknown; headers?: Record<string, string> } | undefined

export type Handler = (req: Request) => Promise<Reply> | Reply

interface Route {
  method: string
  pattern: RegExp
  names: string[]
  handler: Handler
}

/** Logs one line of JSON per call. */
export type Log = (entry: Record<string, unknown>) => void

export class Router {
  private readonly routes: Route[] = []

  add(method: string, path: string, handler: Handler): void {
    const names: string[] = []
    const pattern = new RegExp(
      `^${path.replace(/:([a-zA-Z]+)/g, (_, name: string) => {
        names.push(name)
        return '([^/]+)'
      })}$`,
    )
    this.routes.push({ method, pattern, names, handler })
  }

  /** Serves one request. */
  async handle(
    raw: IncomingMessage,
    res: ServerResponse,
    options: { maxBodyBytes: number; log: Log },
  ): Promise<void> {
    let url: URL
    try {
      url = new URL(raw.url ?? '/', 'http://localhost')
    } catch {
      send(res, 400, {
        error: { code: 'VALIDATION_FAILED', message: 'the request URL is malformed' },
      })
      return
    }
    const method = raw.method ?? 'GET'
    const controller = new AbortController()
    res.on('close', () => controller.abort())
    let matched: { route: Route; params: Record<string, string> } | undefined
    let pathExists = false
    let badParam: string | undefined
    for (const route of this.routes) {
      const m = route.pattern.exec(url.pathname)
      if (m === null) continue
      pathExists = true
      if (route.method !== method) continue
      const params: Record<string, string> = {}
      route.names.forEach((name, i) => {
        try {
          params[name] = decodeURIComponent(m[i + 1]!)
        } catch {
          badParam = name
        }
      })
      matched = { route, params }
      break
    }
    let body: string | undefined
    const text = async (): Promise<string> => (body ??= await readBody(raw, options.maxBodyBytes))
    const req: Request = {
      method,
      path: url.pathname,
      params: matched?.params ?? {},
      query: url.searchParams,
      headers: raw.headers,
      text,
      async json() {
        const t = await text()
        if (t === '') return {}
        try {
          return JSON.parse(t) as unknown
        } catch (e) {
          throw new ValidationError([
            { path: '', message: `the body is not valid JSON: ${(e as Error).message}` },
          ])
        }
      },
      signal: controller.signal,
      raw,
      res,
    }
    try {
      if (badParam !== undefined) {
        throw new ValidationError([{ path: badParam, message: 'is not a valid URL component' }])
      }
      if (matched === undefined) {
        throw pathExists
          ? new LockstepError('NOT_FOUND', `${method} is not allowed on ${url.pathname}`)
          : new LockstepError('NOT_FOUND', `no route ${method} ${url.pathname}`)
      }
      const reply = await matched.route.handler(req)
      if (reply !== undefined) send(res, reply.status ?? 200, reply.body, reply.headers)
    } catch (error) {
      if (res.headersSent) {
        res.destroy()
        return
      }
      if (error instanceof LockstepError) {
        const body: Record<string, unknown> = { code: error.code, message: error.message }
        if (error instanceof ValidationError) body.issues = error.issues
        send(res, error.status, { error: body })
        return
      }
      const id = randomUUID()
      options.log({ level: 'error', id, method, path: url.pathname, error: describe(error) })
      send(res, 500, { error: { code: 'INTERNAL', message: `internal error ${id}`, id } })
    }
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? (error.stack ?? error.message) : String(error)
}

export function send(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body)
  res.writeHead(status, {
    'content-type': typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json',
    'content-length': Buffer.byteLength(text),
    ...headers,
  })
  res.end(text)
}

/** Reads a body, refusing one larger than `limit` bytes with PAYLOAD_TOO_LARGE. */
function readBody(req: IncomingMessage, limit: number): Promise<string> {
  const declared = Number(req.headers['content-length'] ?? 0)
  if (declared > limit) {
    req.resume()
    return Promise.reject(tooLarge(limit))
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    req.on('data', (chunk: Buffer) => {
      size += chunk.length
      if (size > limit) {
        reject(tooLarge(limit))
        req.destroy()
        return
      }
      chunks.push(chunk)
    })
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
    req.on('error', reject)
  })
}

function tooLarge(limit: number): LockstepError {
  return new LockstepError('PAYLOAD_TOO_LARGE', `the body is larger than ${limit} bytes`)
}
