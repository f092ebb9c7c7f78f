/**
 * A preload for a worker process (`node --import tsx --import ./test/e2e/unreachable.ts …`): its
 * HTTP requests to the `host:port`s listed in `LOCKSTEP_TEST_UNREACHABLE` (comma-separated) fail
 * as a refused connection does, as if a firewall stood between it and those peers. Everything
 * else, the scheduler included, it reaches as usual.
 */
const unreachable = new Set(
  (process.env.LOCKSTEP_TEST_UNREACHABLE ?? '').split(',').filter((h) => h !== ''),
)
const reach = globalThis.fetch

globalThis.fetch = (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
  const url = new URL(input instanceof Request ? input.url : input)
  if (unreachable.has(url.host)) {
    const cause = Object.assign(new Error(`connect ECONNREFUSED ${url.host}`), {
      code: 'ECONNREFUSED',
    })
    return Promise.reject(new TypeError('fetch failed', { cause }))
  }
  return reach(input, init)
}
