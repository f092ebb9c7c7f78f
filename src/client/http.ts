/**
 * The client's one way to the server: a call answers its value or throws a {@link LockstepError}
 * with a code of the catalogue, whatever went wrong, the server's own errors as it coded them.
 *
 * Invariant: nothing leaves here but a LockstepError (or the caller's own abort): a server that
 * cannot be reached is UNAVAILABLE, an answer that is not the API's is INTERNAL.
 */
import { Agent as HttpAgent, request as httpRequest } from 'node:http'
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http'
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https'
import {
  LockstepError,
  StoreUnavailableError,
  ValidationError,
  errorCatalogue,
} from '../core/errors.ts'
import type { ErrorCode, Issue } from '../core/errors.ts'

/** How one call is made. */
export interface CallInit {
  signal?: AbortSignal | undefined
  contentType?: string
  headers?: Record<string, string>
}

/** An answer's headers, read by name (any case). */
export interface AnswerHeaders {
  get(name: string): string | null
}

export class Http {
  readonly url: string
  private readonly token: string | undefined
  private readonly base: URL
  private agent: HttpAgent | undefined

  constructor(url: string, token: string | undefined) {
    this.url = url.replace(/\/+$/, '')
    this.token = token
    this.base = new URL(this.url)
  }

  /** A request's headers (the token, the body's type) and its body as text. */
  private prepare(
    body: unknown,
    init: CallInit,
  ): { headers: Record<string, string>; payload: string | undefined } {
    const headers: Record<string, string> = { ...init.headers }
    if (this.token !== undefined) headers.authorization = `Bearer ${this.token}`
    if (body === undefined) return { headers, payload: undefined }
    headers['content-type'] = init.contentType ?? 'application/json'
    return { headers, payload: typeof body === 'string' ? body : JSON.stringify(body) }
  }

  /**
   * Sends a request and gives the response once its status is a success; a failure status is
   * thrown as the server's error. The body is left for the caller to read (a stream, an archive).
   */
  async open(method: string, path: string, body?: unknown, init: CallInit = {}): Promise<Response> {
    const { headers, payload } = this.prepare(body, init)
    let res: Response
    try {
      res = await fetch(`${this.url}${path}`, {
        method,
        headers,
        body: payload,
        signal: init.signal,
      })
    } catch (e) {
      if (init.signal?.aborted === true) throw e
      throw unreachable(this.url, e)
    }
    if (!res.ok) {
      const text = await res.text().catch(() => '')
      throw errorFrom(res.status, text, res.headers.get('retry-after'))
    }
    return res
  }

  /**
   * A call whose answer is JSON, with the answer's headers. It goes over `node:http` with kept-alive
   * connections, not `fetch`: a command that makes one call starts without loading fetch, and a
   * worker's heartbeats cost no AbortSignal and no web stream each. Redirects are not followed,
   * so the token goes to no other server.
   */
  exchange<T>(
    method: string,
    path: string,
    body?: unknown,
    init: CallInit = {},
  ): Promise<{ value: T; headers: AnswerHeaders }> {
    const { headers, payload } = this.prepare(body, init)
    if (payload !== undefined) headers['content-length'] = String(Buffer.byteLength(payload))
    const https = this.base.protocol === 'https:'
    this.agent ??= https ? new HttpsAgent({ keepAlive: true }) : new HttpAgent({ keepAlive: true })
    const signal = init.signal
    return new Promise((resolve, reject) => {
      const failed = (e: unknown) =>
        reject(signal?.aborted === true && e instanceof Error ? e : unreachable(this.url, e))
      const req = (https ? httpsRequest : httpRequest)(
        {
          protocol: this.base.protocol,
          hostname: this.base.hostname,
          port: this.base.port,
          method,
          path: `${this.base.pathname.replace(/\/+$/, '')}${path}`,
          headers,
          agent: this.agent,
          signal,
        },
        (res) => {
          readText(res).then((text) => {
            const status = res.statusCode ?? 500
            const answer = headersOf(res.headers)
            if (status < 200 || status >= 300) {
              reject(errorFrom(status, text, answer.get('retry-after')))
              return
            }
            try {
              resolve({ value: (text === '' ? undefined : JSON.parse(text)) as T, headers: answer })
            } catch {
              reject(
                new LockstepError(
                  'INTERNAL',
                  `${method} ${path} answered what is not JSON: ${text.slice(0, 200)}`,
                ),
              )
            }
          }, failed)
        },
      )
      req.on('error', failed)
      req.end(payload)
    })
  }

  /** Closes the kept-alive connections. */
  close(): void {
    this.agent?.destroy()
    this.agent = undefined
  }
}

function readText(res: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    res.on('data', (c: Buffer) => chunks.push(c))
    res.on('end', () => resolve(Buffer.concat(chunks).toString()))
    res.on('error', reject)
    res.on('aborted', () => reject(new Error('the answer was cut short')))
  })
}

function headersOf(headers: IncomingHttpHeaders): AnswerHeaders {
  return {
    get(name) {
      const value = headers[name.toLowerCase()]
      return value === undefined ? null : Array.isArray(value) ? value.join(', ') : value
    },
  }
}

/** UNAVAILABLE: the scheduler could not be reached, or the connection broke. */
export function unreachable(url: string, cause: unknown): LockstepError {
  const why = cause instanceof Error ? (describeCause(cause) ?? cause.message) : String(cause)
  return new LockstepError(
    'UNAVAILABLE',
    `cannot reach the scheduler at ${url} (${why}); is it running?`,
  )
}

/** fetch says `fetch failed`; the reason (ECONNREFUSED, …) is in its cause. */
function describeCause(e: Error): string | undefined {
  const cause = (e as { cause?: unknown }).cause
  if (!(cause instanceof Error)) return undefined
  const code = (cause as NodeJS.ErrnoException).code
  return code === undefined ? cause.message : `${code}: ${cause.message}`
}

/** A failed answer as the error the server meant, with its code. */
export function errorFrom(status: number, text: string, retryAfter: string | null): LockstepError {
  let parsed: { error?: { code?: string; message?: string; issues?: Issue[] } } | undefined
  try {
    parsed = JSON.parse(text) as typeof parsed
  } catch {
    parsed = undefined
  }
  const e = parsed?.error
  // A code this client does not know (a newer server's) is named in the message, never passed on.
  const known = e?.code !== undefined && e.code in errorCatalogue
  const code = known ? (e.code as ErrorCode) : fallbackCode(status)
  if (e?.issues !== undefined && known) return new ValidationError(e.issues, code)
  if (code === 'STORE_UNAVAILABLE') {
    // The scheduler's database fails: the caller learns when it is worth trying again.
    return new StoreUnavailableError(e?.message ?? 'the database fails', Number(retryAfter) || 1)
  }
  const message = e?.message ?? `HTTP ${status}: ${text.slice(0, 200)}`
  return new LockstepError(code, known || e?.code === undefined ? message : `${e.code}: ${message}`)
}

/** The code of the catalogue for a status without a known code (a proxy's answer, say). */
function fallbackCode(status: number): ErrorCode {
  if (status === 404) return 'NOT_FOUND'
  if (status === 401) return 'UNAUTHORIZED'
  if (status === 403) return 'FORBIDDEN'
  if (status === 429) return 'QUOTA_EXCEEDED'
  if (status === 413) return 'PAYLOAD_TOO_LARGE'
  if (status === 502 || status === 503 || status === 504) return 'UNAVAILABLE'
  if (status >= 400 && status < 500) return 'VALIDATION_FAILED'
  return 'INTERNAL'
}
