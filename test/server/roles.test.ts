/**
 * Every route, with every kind of caller, walked from the server's own route table (its OpenAPI
 * document): no token and a wrong token get 401, a role the route does not name gets 403, and a
 * role it names (or an admin) is never refused for who it is. A route with no rule at all fails
 * the walk, so a new route cannot ship without one.
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
  { who: 'workbench', role: 'workbench', token: 'ana-token-123', name: 'ana' },
  { who: 'worker', role: 'worker', token: 'worker-token-1', name: 'w-roles' },
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

/**
 * A path with every parameter filled (ids that name nothing, or the worker's own id), and an
 * order named in the query, so that a rule about following every order is not taken for a role.
 */
function fill(path: string): string {
  return `${path.replace(/\{[^}]+\}/g, 'w-roles')}?order=w-roles`
}

describe('every route with every caller', () => {
  it('has a rule, and answers each caller by it', async () => {
    const routes = await routeTable()
    expect(routes.length).toBeGreaterThan(20)
    const wrong: string[] = []
    for (const route of routes) {
      expect(route.roles, `${route.method} ${route.path} has no rule`).toBeDefined()
      for (const caller of callers) {
        const headers: Record<string, string> = { 'content-type': 'application/json' }
        if (caller.token !== undefined) headers.authorization = `Bearer ${caller.token}`
        const controller = new AbortController()
        const res = await fetch(`${server.url}${fill(route.path)}`, {
          method: route.method,
          headers,
          body: route.method === 'GET' || route.method === 'DELETE' ? undefined : '{}',
          signal: controller.signal,
        })
        // Streams (events, products) are cut as soon as the status is known.
        controller.abort()
        await res.body?.cancel().catch(() => {})
        const expected =
          route.roles === 'public'
            ? 'allowed'
            : caller.role === undefined
              ? 401
              : caller.role === 'admin' || route.roles!.includes(caller.role)
                ? 'allowed'
                : 403
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
