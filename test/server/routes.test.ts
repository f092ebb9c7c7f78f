/**
 * What the HTTP layer promises beyond each route's logic: the OpenAPI document describes every
 * route with what it reads and answers, workers' older paths still answer, and bodies the server
 * cannot take get the catalogue's 4xx instead of a cut connection.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { SchedulerService } from '../../src/service/service.ts'
import { startServer } from '../../src/server/server.ts'
import type { RunningServer } from '../../src/server/server.ts'
import { SqliteStore } from '../../src/store/sqlite-store.ts'

const tokens = [
  { role: 'workbench' as const, name: 'ana', token: 'ana-token-123' },
  { role: 'worker' as const, name: '*', token: 'worker-token-1' },
]
const ana = { authorization: 'Bearer ana-token-123' }
const fleet = { authorization: 'Bearer worker-token-1' }

let dir: string
let service: SchedulerService
let server: RunningServer

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'lockstep-routes-'))
  service = await SchedulerService.start({ store: new SqliteStore({ path: join(dir, 'db') }) })
  server = await startServer({ service, port: 0, tokens, maxBodyBytes: 64 * 1024 })
})

afterEach(async () => {
  await server.close()
  await service.close()
  rmSync(dir, { recursive: true, force: true })
})

interface Operation {
  responses?: Record<string, { content?: Record<string, { schema?: unknown }> }>
  requestBody?: { content?: Record<string, { schema?: unknown }> }
}

describe('the HTTP layer', () => {
  it('documents every route with the schema of its answer, generated from the routes', async () => {
    const doc = (await (await fetch(`${server.url}/openapi.json`)).json()) as {
      openapi: string
      paths: Record<string, Record<string, Operation>>
    }
    expect(doc.openapi).toBe('3.1.0')
    const routes = Object.entries(doc.paths).flatMap(([path, methods]) =>
      Object.entries(methods).map(([method, op]) => ({ route: `${method} ${path}`, op })),
    )
    expect(routes.map((r) => r.route)).toEqual(
      expect.arrayContaining([
        'delete /v1/targets/{id}',
        'post /v1/targets/{id}/heartbeat',
        'get /v1/products/{id}/content',
        'get /v1/targets/{target}/products/{id}',
        'get /v1/orders/{id}/jobs',
      ]),
    )
    for (const { route, op } of routes) {
      const success = Object.entries(op.responses ?? {}).find(([status]) => /^2/.test(status))
      expect(success, `${route} documents a success`).toBeDefined()
      const errors = Object.keys(op.responses ?? {}).filter((s) => /^[45]/i.test(s))
      expect(errors, `${route} documents its errors`).toEqual(['4XX', '5XX'])
    }
    const jobs = doc.paths['/v1/orders/{id}/jobs']!.get!.responses!['200']!.content![
      'application/json'
    ]!.schema as { items: { properties: Record<string, unknown> } }
    expect(Object.keys(jobs.items.properties)).toEqual(
      expect.arrayContaining(['id', 'state', 'attempt', 'policy', 'wait']),
    )
    const heartbeat = doc.paths['/v1/targets/{id}/heartbeat']!.post!.requestBody!.content![
      'application/json'
    ]!.schema as { $ref: string }
    expect(heartbeat.$ref).toBe('#/components/schemas/Heartbeat')
    // A stream resumes after the last event heard: by header, or by query for clients without.
    const events = doc.paths['/v1/events']!.get as { parameters?: { in: string; name: string }[] }
    expect(events.parameters?.map((p) => `${p.in} ${p.name}`)).toEqual(
      expect.arrayContaining(['header last-event-id', 'query after', 'query order']),
    )
  })

  it('keeps the worker paths that agents in the field call', async () => {
    const registered = await fetch(`${server.url}/v1/workers`, {
      method: 'POST',
      headers: { ...fleet, 'content-type': 'application/json' },
      body: JSON.stringify({ id: 'w1', slots: 2 }),
    })
    expect(registered.status).toBe(201)
    const beat = await fetch(`${server.url}/v1/workers/w1/heartbeat`, {
      method: 'POST',
      headers: { ...fleet, 'content-type': 'application/json' },
      body: JSON.stringify({ free: 0 }),
    })
    expect(await beat.json()).toEqual({ assignments: [], refused: [], stop: [] })
    const listed = (await (await fetch(`${server.url}/v1/targets`, { headers: ana })).json()) as {
      target: { id: string }
      live: boolean
    }[]
    expect(listed.map((t) => [t.target.id, t.live])).toContainEqual(['w1', true])
    const left = await fetch(`${server.url}/v1/targets/w1`, { method: 'DELETE', headers: fleet })
    expect(left.status).toBe(204)
    const after = (await (await fetch(`${server.url}/v1/workers`, { headers: ana })).json()) as {
      target: { id: string }
      live: boolean
    }[]
    expect(after.map((t) => [t.target.id, t.live])).toContainEqual(['w1', false])
  })

  it('refuses a body that is neither JSON nor YAML with 415, and one too large with 413', async () => {
    const text = await fetch(`${server.url}/v1/orders`, {
      method: 'POST',
      headers: { ...ana, 'content-type': 'text/plain' },
      body: 'name: p',
    })
    expect(text.status).toBe(415)
    expect(((await text.json()) as { error: { code: string } }).error.code).toBe(
      'UNSUPPORTED_MEDIA_TYPE',
    )
    // Far over the limit, sent in full: the client reads the answer, not a reset connection.
    const big = await fetch(`${server.url}/v1/orders`, {
      method: 'POST',
      headers: { ...ana, 'content-type': 'application/json' },
      body: JSON.stringify({ packet: { name: 'p', description: 'x'.repeat(4 * 1024 * 1024) } }),
    })
    expect(big.status).toBe(413)
    expect(((await big.json()) as { error: { code: string } }).error.code).toBe('PAYLOAD_TOO_LARGE')
    expect(await service.listOrders(10)).toEqual([])
  })

  it('counts a planted product in /metrics, and does not take it', async () => {
    const post = (path: string, body: unknown) =>
      fetch(`${server.url}${path}`, {
        method: 'POST',
        headers: { ...fleet, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      })
    expect((await post('/v1/targets', { id: 'w1' })).status).toBe(201)
    expect((await post('/v1/targets/w1/heartbeat', { added: ['never-made'] })).status).toBe(200)
    const metrics = await (await fetch(`${server.url}/metrics`)).text()
    expect(metrics).toMatch(/^lockstep_announcements_refused_total 1$/m)
    expect(service.holders('never-made')).toEqual([])
  })

  it('counts in /metrics the inputs handed out already in the worker’s cache, and those it fetches', async () => {
    const beat = async (id: string, body: unknown) => {
      const res = await fetch(`${server.url}/v1/targets/${id}/heartbeat`, {
        method: 'POST',
        headers: { ...fleet, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      })
      expect(res.status).toBe(200)
      return (await res.json()) as { assignments: { jobId: string; name: string }[] }
    }
    await service.registerTarget({ id: 'w1' })
    await service.registerTarget({ id: 'w2' })
    const op = { builtin: 'noop' }
    await service.submitPacket(
      {
        name: 'local',
        jobs: [
          { name: 'make', op, target: 'w1' },
          { name: 'here', op, after: ['make'], target: 'w1' },
          { name: 'there', op, after: ['make'], target: 'w2' },
        ],
      },
      {},
      'ana',
    )
    const [make] = (await beat('w1', { free: 1 })).assignments
    const result = { ok: true, productHash: 'a'.repeat(64) }
    await beat('w1', { results: [{ jobId: make!.jobId, attempt: 1, result }] })
    expect((await beat('w1', { free: 1 })).assignments.map((a) => a.name)).toEqual(['here'])
    expect((await beat('w2', { free: 1 })).assignments.map((a) => a.name)).toEqual(['there'])
    const metrics = await (await fetch(`${server.url}/metrics`)).text()
    expect(metrics).toMatch(/^lockstep_inputs_handed_out_total\{local="true"\} 1$/m)
    expect(metrics).toMatch(/^lockstep_inputs_handed_out_total\{local="false"\} 1$/m)
  })

  it('lets no worker register a cluster, speak for one, or claim to run images', async () => {
    const post = (body: unknown) =>
      fetch(`${server.url}/v1/targets`, {
        method: 'POST',
        headers: { ...fleet, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      })
    const refused = async (body: unknown) => {
      const res = await post(body)
      expect(res.status).toBe(400)
      const { error } = (await res.json()) as {
        error: { issues: { path: string; message: string }[] }
      }
      return error.issues[0]!
    }
    const cluster = await refused({ id: 'k1', kind: 'kubernetes' })
    expect([cluster.path, cluster.message]).toEqual([
      'kind',
      expect.stringMatching(/targets file/) as string,
    ])
    const images = await refused({ id: 'w1', runs: ['exec', 'image'] })
    expect([images.path, images.message]).toEqual([
      'runs',
      expect.stringMatching(/runs no image/) as string,
    ])
    // A cluster the server drives keeps its id.
    await service.registerTarget({ id: 'cluster-a', kind: 'kubernetes', slots: 2 })
    expect(await refused({ id: 'cluster-a' })).toMatchObject({ path: 'id' })
    expect(service.target('cluster-a')?.kind).toBe('kubernetes')
  })

  it('names the field of a bad query parameter', async () => {
    const res = await fetch(`${server.url}/v1/orders?limit=0`, { headers: ana })
    expect(res.status).toBe(400)
    const body = (await res.json()) as { error: { code: string; issues: { path: string }[] } }
    expect(body.error.code).toBe('VALIDATION_FAILED')
    expect(body.error.issues.map((i) => i.path)).toEqual(['query.limit'])
  })
})
