/**
 * The dashboard's one way to the API: `fetch` with the token as a bearer header, errors as
 * {@link ApiError} carrying the API's code and message, and server-sent events read from a
 * fetch stream (EventSource cannot send a header), reconnecting after a cut.
 *
 * The token lives in sessionStorage: it is gone when the tab closes and never reaches a URL
 * the server logs.
 */

const KEY = 'lockstep.token'

/** @returns {string | null} */
export function token() {
  return sessionStorage.getItem(KEY)
}

/** @param {string | null} value */
export function setToken(value) {
  if (value === null || value === '') sessionStorage.removeItem(KEY)
  else sessionStorage.setItem(KEY, value)
}

/** An answer that is not a success, with the API's error code and message. */
export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} code
   * @param {string} message
   */
  constructor(status, code, message) {
    super(message)
    this.status = status
    this.code = code
  }
}

/** The bearer header of the token, for requests `request` does not make. */
export const authHeaders = () => headers()

/** @returns {Record<string, string>} */
function headers() {
  const t = token()
  return t === null ? {} : { authorization: `Bearer ${t}` }
}

/**
 * A request to the API; resolves with the parsed JSON body and the response's headers.
 * @param {string} path
 * @param {{ method?: string, body?: unknown, signal?: AbortSignal }} [options]
 * @returns {Promise<{ data: any, headers: Headers }>}
 */
export async function request(path, options = {}) {
  const res = await fetch(path, {
    method: options.method ?? 'GET',
    headers: {
      ...headers(),
      ...(options.body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
    signal: options.signal,
  })
  const text = await res.text()
  /** @type {any} */
  let data
  try {
    data = text === '' ? undefined : JSON.parse(text)
  } catch {
    data = text
  }
  if (!res.ok) {
    const error = data?.error ?? {}
    throw new ApiError(res.status, error.code ?? 'HTTP', error.message ?? `HTTP ${res.status}`)
  }
  return { data, headers: res.headers }
}

/** @param {string} path */
export async function get(path) {
  return (await request(path)).data
}

/**
 * @param {string} path
 * @param {unknown} [body]
 */
export async function post(path, body = {}) {
  return (await request(path, { method: 'POST', body })).data
}

/**
 * Follows a server-sent event stream until `close()`: each event goes to `onEvent(type, data)`.
 * After a cut (or a stream the server ends while the caller still wants it) it connects again
 * after `retry` ms; `onState` hears whether the stream is live.
 * @param {string} path
 * @param {(type: string, data: any) => void} onEvent
 * @param {(live: boolean) => void} [onState]
 * @returns {{ close(): void }}
 */
export function follow(path, onEvent, onState = () => {}) {
  const abort = new AbortController()
  let retry = 1000
  let closed = false
  const run = async () => {
    while (!closed) {
      try {
        const res = await fetch(path, {
          headers: { accept: 'text/event-stream', ...headers() },
          signal: abort.signal,
        })
        // A refused stream (gone order, no rights) is not tried again.
        if (res.status >= 400 && res.status < 500) return onState(false)
        if (!res.ok || res.body === null) throw new Error(`HTTP ${res.status}`)
        onState(true)
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader()
        let buffer = ''
        for (;;) {
          const { value, done } = await reader.read()
          if (done) break
          buffer += value
          let end
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const block = buffer.slice(0, end)
            buffer = buffer.slice(end + 2)
            const type = /^event: ?(.*)$/m.exec(block)?.[1]
            const data = /^data: ?(.*)$/m.exec(block)?.[1]
            const wait = /^retry: ?(\d+)$/m.exec(block)?.[1]
            if (wait !== undefined) retry = Number(wait)
            if (type !== undefined && data !== undefined) onEvent(type, JSON.parse(data))
          }
        }
      } catch {
        if (closed) return
      }
      onState(false)
      if (!closed) await new Promise((r) => setTimeout(r, retry))
    }
  }
  void run()
  return {
    close() {
      closed = true
      abort.abort()
    },
  }
}

/**
 * Calls `fn` at most once per `ms`: a call runs at once when the last run is that long ago,
 * otherwise once at the end of the pause, however many calls came during it.
 * @param {() => void} fn
 * @param {number} ms
 * @returns {{ (): void, cancel(): void }}
 */
export function throttle(fn, ms) {
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let timer
  let last = 0
  const run = () => {
    timer = undefined
    last = Date.now()
    fn()
  }
  const throttled = () => {
    if (timer !== undefined) return
    const wait = last + ms - Date.now()
    if (wait <= 0) run()
    else timer = setTimeout(run, wait)
  }
  throttled.cancel = () => {
    if (timer !== undefined) clearTimeout(timer)
    timer = undefined
  }
  return throttled
}

/** @type {Promise<Record<string, any>> | undefined} */
let documented

/**
 * What this server's API offers, from its OpenAPI document (public): newer routes and query
 * parameters are used only when it lists them, so an older server is never sent what it refuses.
 * @returns {Promise<{ has(path: string): boolean, takes(path: string, param: string): boolean }>}
 */
export async function offers() {
  documented ??= fetch('/openapi.json')
    .then((r) => (r.ok ? r.json() : { paths: {} }))
    .then((d) => d.paths ?? {})
    .catch(() => ({}))
  const paths = await documented
  return {
    has: (path) => paths[path]?.get !== undefined,
    takes: (path, param) =>
      (paths[path]?.get?.parameters ?? []).some(
        (/** @type {any} */ p) => p.in === 'query' && p.name === param,
      ),
  }
}
