/**
 * Worker identities: a worker token acts only as the ids its name covers (its own name, or a
 * fleet pattern with `*`). Registering, heartbeating or leaving as another id is a 403 naming
 * both, logged at warn level, and changes nothing in the store; an admin acts for any id; an
 * open server (no tokens) keeps taking any id.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { SchedulerService } from '../../src/service/service.ts'
import { coversId } from '../../src/server/auth.ts'
import { startServer } from '../../src/server/server.ts'
import type { RunningServer } from '../../src/server/server.ts'
import { SqliteStore } from '../../src/store/sqlite-store.ts'
import { checkLeaks } from '../leaks.ts'

const tokens = [
  { role: 'admin' as const, name: 'ops', token: 'admin-token-1' },
  { role: 'worker' as const, name: 'clinic-1', token: 'clinic-1-token' },
  { role: 'worker' as const, name: 'fleet-*', token: 'fleet-token-1' },
]
const as = (token: string) => ({
  authorization: `Bearer ${token}`,
  'content-type': 'application/json',
})

const opened = checkLeaks()

let dir: string
let service: SchedulerService | undefined
let server: RunningServer | undefined

async function start(withTokens: typeof tokens | [], log = false): Promise<string> {
  const s = opened.service(
    await SchedulerService.start({ store: new SqliteStore({ path: join(dir, 'db') }) }),
  )
  service = s
  server = opened.server(await startServer({ service: s, port: 0, tokens: withTokens, log }))
  return server.url
}

/** The workers the service knows (the initiator is always there), with whether each is live. */
function workers(): [string, boolean][] {
  return service!
    .targets()
    .filter((t) => t.target.id !== 'initiator')
    .map((t) => [t.target.id, t.live])
}

beforeEach(() => {
  service = undefined
  server = undefined
  dir = mkdtempSync(join(tmpdir(), 'lockstep-identity-'))
})

afterEach(async () => {
  vi.restoreAllMocks()
  await server?.close()
  await service?.close()
  rmSync(dir, { recursive: true, force: true })
})

/** The targets table as the store holds it, read beside the server. */
function storedTargets(): unknown[] {
  const db = new Database(join(dir, 'db'), { readonly: true })
  try {
    return db
      .prepare(
        "SELECT id, slots, url, live, updated_at FROM targets WHERE id <> 'initiator' ORDER BY id",
      )
      .all()
  } finally {
    db.close()
  }
}

let url = ''

function register(id: string, token: string, path = '/v1/targets') {
  return fetch(`${url}${path}`, {
    method: 'POST',
    headers: as(token),
    body: JSON.stringify({ id, slots: 2 }),
  })
}

describe('worker identities', () => {
  it.each([
    ['fleet-*', 'fleet-7', true],
    ['fleet-*', 'fleet-', true],
    ['fleet-*', 'clinic-1', false],
    ['fleet-*', 'xfleet-1', false],
    ['clinic-1', 'clinic-1', true],
    ['clinic-1', 'clinic-10', false],
    ['a.b*', 'aXb1', false],
    ['*', 'anything', true],
  ])('a token named %s covers %s: %s', (pattern, id, covered) => {
    expect(coversId(pattern, id)).toBe(covered)
  })

  it.each(['/v1/targets', '/v1/workers'])(
    'refuses a worker token registering as another id at %s, and stores nothing',
    async (path) => {
      url = await start(tokens)
      const res = await register('clinic-2', 'clinic-1-token', path)
      expect(res.status).toBe(403)
      const body = (await res.json()) as { error: { code: string; message: string } }
      expect(body.error.code).toBe('FORBIDDEN')
      expect(body.error.message).toContain("'clinic-2'")
      expect(body.error.message).toContain("'clinic-1'")
      expect(workers()).toEqual([])
      expect(storedTargets()).toEqual([])
    },
  )

  it.each([
    ['POST', '/v1/targets/clinic-2/heartbeat'],
    ['POST', '/v1/workers/clinic-2/heartbeat'],
    ['DELETE', '/v1/targets/clinic-2'],
    ['DELETE', '/v1/workers/clinic-2'],
  ])(
    'refuses a worker token acting as another id: %s %s, and changes nothing',
    async (method, path) => {
      url = await start(tokens)
      expect((await register('clinic-2', 'admin-token-1')).status).toBe(201)
      const before = storedTargets()
      const res = await fetch(`${url}${path}`, {
        method,
        headers: as('clinic-1-token'),
        ...(method === 'POST' ? { body: JSON.stringify({ free: 1 }) } : {}),
      })
      expect(res.status).toBe(403)
      const body = (await res.json()) as { error: { code: string; message: string } }
      expect(body.error).toMatchObject({ code: 'FORBIDDEN' })
      expect(body.error.message).toMatch(/clinic-2.*clinic-1/)
      expect(storedTargets()).toEqual(before)
      expect(workers()).toEqual([['clinic-2', true]])
    },
  )

  it('lets a token act as its own id, and a fleet token as every id its pattern covers', async () => {
    url = await start(tokens)
    expect((await register('clinic-1', 'clinic-1-token')).status).toBe(201)
    expect((await register('fleet-7', 'fleet-token-1')).status).toBe(201)
    expect((await register('clinic-9', 'fleet-token-1')).status).toBe(403)
    const beat = await fetch(`${url}/v1/targets/fleet-7/heartbeat`, {
      method: 'POST',
      headers: as('fleet-token-1'),
      body: JSON.stringify({}),
    })
    expect(beat.status).toBe(200)
    const left = await fetch(`${url}/v1/targets/clinic-1`, {
      method: 'DELETE',
      headers: as('clinic-1-token'),
    })
    expect(left.status).toBe(204)
    expect(workers()).toEqual([
      ['clinic-1', false],
      ['fleet-7', true],
    ])
  })

  it('lets an admin token act for any id', async () => {
    url = await start(tokens)
    expect((await register('anyone', 'admin-token-1')).status).toBe(201)
    const left = await fetch(`${url}/v1/targets/anyone`, {
      method: 'DELETE',
      headers: as('admin-token-1'),
    })
    expect(left.status).toBe(204)
  })

  it('keeps an open server (no tokens) open to any id', async () => {
    url = await start([])
    const res = await fetch(`${url}/v1/targets`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ id: 'whoever' }),
    })
    expect(res.status).toBe(201)
  })

  it('logs a refused identity at warn level, with the token and the id', async () => {
    const lines: string[] = []
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: unknown) => {
      lines.push(String(chunk))
      return true
    })
    url = await start(tokens, true)
    expect((await register('clinic-2', 'clinic-1-token')).status).toBe(403)
    const warned = lines
      .flatMap((l) => l.split('\n'))
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l.level === 40)
    expect(warned).toMatchObject({ token: 'clinic-1', id: 'clinic-2', role: 'worker' })
  })
})
