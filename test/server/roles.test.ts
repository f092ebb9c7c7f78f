/**
 * Every route, with every kind of caller, walked from the server's own route table (its OpenAPI
 * document), over an order that belongs to ana and a worker id that belongs to one worker token:
 *
 * - no token and a wrong token get 401; a role the route does not name gets 403;
 * - a role it names (or an admin) is never refused for who it is;
 * - another workbench gets 404 for ana's order and its jobs, as if they did not exist;
 * - a worker token acting as an id it does not cover gets 403.
 *
 * A route with no rule at all fails the walk, so a new route cannot ship without one.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { SchedulerService } from '../../src/service/service.ts'
import { startServer } from '../../src/server/server.ts'
import type { RunningServer } from '../../src/server/server.ts'
import { SqliteStore } from '../../src/store/sqlite-store.ts'
import { checkLeaks } from '../leaks.ts'

/** One caller of each kind; a worker token acts for its own name. */
const callers = [
  { who: 'no token', role: undefined, token: undefined },
  { who: 'wrong token', role: undefined, token: 'not-a-known-token' },
  { who: 'admin', role: 'admin', token: 'admin-token-123', name: 'ops' },
  { who: 'owner', role: 'workbench', token: 'ana-token-123', name: 'ana' },
  { who: 'another workbench', role: 'workbench', token: 'bob-token-123', name: 'bob' },
  { who: 'worker', role: 'worker', token: 'worker-token-1', name: 'w-roles' },
  { who: 'worker with another id', role: 'worker', token: 'worker-token-2', name: 'w-other' },
  { who: 'viewer', role: 'viewer', token: 'viewer-token-1', name: 'vera' },
] as const

const opened = checkLeaks()
let dir: string
let service: SchedulerService
let server: RunningServer

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'lockstep-roles-'))
  service = opened.service(
    await SchedulerService.start({ store: new SqliteStore({ path: join(dir, 'db') }) }),
  )
  server = opened.server(
    await startServer({
      service,
      port: 0,
      // Downloads on: their refusal is another rule, tested on its own.
      allowDownload: true,
      tokens: callers.flatMap((c) =>
        c.role === undefined ? [] : [{ role: c.role, name: c.name, token: c.token }],
      ),
    }),
  )
})

afterEach(async () => {
  await server.close()
  await service.close()
  rmSync(dir, { recursive: true, force: true })
})

interface Route {
  method: string
  path: string
  roles: readonly string[] | 'public' | undefined
}

async function routeTable(): Promise<Route[]> {
  const doc = (await (await fetch(`${server.url}/openapi.json`)).json()) as {
    paths: Record<string, Record<string, { security?: unknown[]; 'x-roles'?: string[] }>>
  }
  return Object.entries(doc.paths).flatMap(([path, methods]) =>
    Object.entries(methods).map(([method, op]) => ({
      method: method.toUpperCase(),
      path,
      roles:
        op['x-roles'] ??
        (Array.isArray(op.security) && op.security.length === 0 ? 'public' : undefined),
    })),
  )
}

/** What the path parameters name: ana's order and its job, and the worker's own id. */
interface Names {
  order: string
  job: string
}

/** A path with every parameter filled, and an order named in the query (for the event stream). */
function fill(path: string, names: Names): string {
  const filled = path
    .replace(/^\/v1\/orders\/\{id\}/, `/v1/orders/${names.order}`)
    .replace(/^\/v1\/jobs\/\{id\}/, `/v1/jobs/${names.job}`)
    .replace(/^\/v1\/(targets|workers)\/\{id\}/, '/v1/$1/w-roles')
    .replace('{target}', 'initiator')
    .replace(/\{id\}/g, names.job)
  return `${filled}?order=${names.order}`
}

/** Routes that reach one order (its jobs, its products): another owner finds nothing there. */
const ofTheOrder =
  /^\/v1\/(orders|jobs|products)\/\{id\}|^\/v1\/targets\/\{target\}\/products|^\/v1\/events/

/** Routes that act as the worker id in their path. */
const actsAsWorker = /^\/v1\/(targets|workers)\/\{id\}/

describe('every route with every caller', () => {
  it('has a rule, and answers each caller by it', async () => {
    const ana = { authorization: 'Bearer ana-token-123', 'content-type': 'application/json' }
    const submitted = (await (
      await fetch(`${server.url}/v1/orders`, {
        method: 'POST',
        headers: ana,
        body: JSON.stringify({
          packet: { name: 'p', jobs: [{ name: 'a', op: { builtin: 'noop' } }] },
        }),
      })
    ).json()) as { orderId: string }
    const [job] = (await (
      await fetch(`${server.url}/v1/orders/${submitted.orderId}/jobs`, { headers: ana })
    ).json()) as { id: string }[]
    const names = { order: submitted.orderId, job: job!.id }
    const routes = await routeTable()
    expect(routes.length).toBeGreaterThan(20)
    const wrong: string[] = []
    // Changes last: a cancel must not end the order before the reads are walked.
    routes.sort((a, b) => Number(a.path.endsWith('/cancel')) - Number(b.path.endsWith('/cancel')))
    for (const route of routes) {
      expect(route.roles, `${route.method} ${route.path} has no rule`).toBeDefined()
      for (const caller of callers) {
        const headers: Record<string, string> = { 'content-type': 'application/json' }
        if (caller.token !== undefined) headers.authorization = `Bearer ${caller.token}`
        const controller = new AbortController()
        const res = await fetch(`${server.url}${fill(route.path, names)}`, {
          method: route.method,
          headers,
          body: route.method === 'GET' || route.method === 'DELETE' ? undefined : '{}',
          signal: controller.signal,
        })
        // Streams (events, products) are cut as soon as the status is known.
        controller.abort()
        await res.body?.cancel().catch(() => {})
        const named =
          route.roles === 'public' ||
          (caller.role !== undefined &&
            (caller.role === 'admin' || route.roles!.includes(caller.role)))
        const expected: number | 'allowed' =
          route.roles === 'public'
            ? 'allowed'
            : caller.role === undefined
              ? 401
              : !named
                ? 403
                : caller.who === 'another workbench' && ofTheOrder.test(route.path)
                  ? 404
                  : caller.who === 'worker with another id' && actsAsWorker.test(route.path)
                    ? 403
                    : 'allowed'
        const ok =
          expected === 'allowed'
            ? res.status !== 401 && res.status !== 403
            : res.status === expected
        if (!ok) wrong.push(`${route.method} ${route.path} as ${caller.who}: ${res.status}`)
      }
    }
    expect(wrong).toEqual([])
  })
})
