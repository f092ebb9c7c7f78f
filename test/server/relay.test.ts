/**
 * Worker URLs and the relay: a registration's `url` is `http(s)://host[:port]` with an optional
 * path and nothing else, or a 400 naming `url` that stores nothing; the relay fetches only from
 * the URL a holder registered, follows no redirect (so its worker token goes nowhere else), and
 * says which holder failed with the HTTP status, never what the holder answered.
 */
import { createServer } from 'node:http'
import type { IncomingHttpHeaders, Server, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { isWorkerUrl } from '../../src/core/protocol.ts'
import { SchedulerService } from '../../src/service/service.ts'
import { startServer } from '../../src/server/server.ts'
import type { RunningServer } from '../../src/server/server.ts'
import { SqliteStore } from '../../src/store/sqlite-store.ts'
import { checkLeaks } from '../leaks.ts'

const RELAY = 'relay-token-123'
const tokens = [
  { role: 'admin' as const, name: 'ops', token: 'admin-token-1' },
  { role: 'worker' as const, name: 'w*', token: RELAY },
]
const worker = { authorization: `Bearer ${RELAY}`, 'content-type': 'application/json' }

const opened = checkLeaks()

/** A stand-in for a worker's product server: records what it is asked, answers as told. */
interface Upstream {
  url: string
  seen: { url: string; headers: IncomingHttpHeaders }[]
  server: Server
}

async function upstream(answer: (res: ServerResponse) => void): Promise<Upstream> {
  const seen: Upstream['seen'] = []
  const server = createServer((req, res) => {
    seen.push({ url: req.url ?? '', headers: req.headers })
    answer(res)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  opened.server(server, 'upstream')
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    server,
  }
}

let dir: string
let service: SchedulerService
let server: RunningServer
let upstreams: Upstream[]

beforeEach(async () => {
  upstreams = []
  dir = mkdtempSync(join(tmpdir(), 'lockstep-relay-'))
  service = opened.service(
    await SchedulerService.start({ store: new SqliteStore({ path: join(dir, 'db') }) }),
  )
  server = opened.server(await startServer({ service, port: 0, tokens }))
})

afterEach(async () => {
  await server.close()
  await service.close()
  for (const u of upstreams) {
    u.server.closeAllConnections()
    await new Promise((r) => u.server.close(r))
  }
  rmSync(dir, { recursive: true, force: true })
})

function register(body: Record<string, unknown>) {
  return fetch(`${server.url}/v1/targets`, {
    method: 'POST',
    headers: worker,
    body: JSON.stringify(body),
  })
}

/**
 * Registers w1 at `url` holding a product it made (a registration's `cached` is believed only
 * for what the store says w1 holds, so these tests once planted `p1` that way); its id.
 */
async function holding(url: string): Promise<string> {
  expect((await register({ id: 'w1', url })).status).toBe(201)
  await service.submitPacket(
    { name: 'p', jobs: [{ name: 'p1', op: { builtin: 'noop' } }] },
    {},
    'ops',
  )
  const [a] = (await service.heartbeat('w1', { free: 1 })).assignments
  await service.heartbeat('w1', {
    results: [{ jobId: a!.jobId, attempt: 1, result: { ok: true } }],
  })
  return a!.productId
}

function relay(product: string) {
  return fetch(`${server.url}/v1/products/${product}/content`, { headers: worker })
}

describe('worker URLs', () => {
  it.each([
    ['http://10.0.0.5:7301', true],
    ['https://clinic-1.example.org', true],
    ['https://clinic-1.example.org/lockstep/', true],
    ['http://[::1]:7301/x', true],
    ['http://w:7301/products?token=x', false],
    ['http://w:7301/#frag', false],
    ['http://user:pass@w:7301', false],
    ['http://evil@w:7301', false],
    ['ftp://w:21', false],
    ['file:///etc/passwd', false],
    ['http:w:7301', false],
    ['http:///w:7301', false],
    ['http://w:99999', false],
    ['http://w:7301/a b', false],
    ['http://w\\@evil:7301', false],
  ])('%s is a worker URL: %s', (url, ok) => {
    expect(isWorkerUrl(url)).toBe(ok)
  })

  it.each(['http://127.0.0.1:7301/?x=1', 'http://127.0.0.1:7301#x', 'http://me@127.0.0.1:7301'])(
    'refuses a registration with url %s: 400 naming url, nothing stored',
    async (url) => {
      const res = await register({ id: 'w1', url })
      expect(res.status).toBe(400)
      const body = (await res.json()) as {
        error: { code: string; issues: { path: string; message: string }[] }
      }
      expect(body.error.code).toBe('VALIDATION_FAILED')
      expect(body.error.issues.map((i) => i.path)).toContain('url')
      expect(service.targets().map((t) => t.target.id)).not.toContain('w1')
    },
  )
})

describe('the relay', () => {
  it('says which holder failed and its status, never what the holder answered', async () => {
    const u = await upstream((res) => {
      res.writeHead(500, { 'content-type': 'text/plain' })
      res.end('SECRET stack trace at /srv/internal/db.ts:42 password=hunter2')
    })
    upstreams.push(u)
    const product = await holding(`${u.url}/base`)
    const res = await relay(product)
    expect(res.status).toBe(404)
    const text = await res.text()
    expect(JSON.parse(text)).toMatchObject({ error: { code: 'PRODUCT_NOT_FOUND' } })
    expect(text).toContain('w1: HTTP 500')
    expect(text).not.toMatch(/SECRET|hunter2|internal/)
    // Fetched at the registered URL's path, with a capability for that product, not a token.
    expect(u.seen.map((s) => s.url)).toEqual([`/base/products/${product}`])
    expect(u.seen[0]!.headers.authorization).toMatch(/^Capability [\w-]+\.[\w-]+$/)
    expect(u.seen[0]!.headers.authorization).not.toContain(RELAY)
  })

  it('follows no redirect: the token goes to the registered URL only', async () => {
    const elsewhere = await upstream((res) => res.writeHead(200).end('stolen'))
    const u = await upstream((res) => {
      res.writeHead(302, { location: `${elsewhere.url}/collect` })
      res.end('moved')
    })
    upstreams.push(elsewhere, u)
    const res = await relay(await holding(u.url))
    expect(res.status).toBe(404)
    expect(await res.text()).toContain('w1: HTTP 302')
    expect(elsewhere.seen).toEqual([])
  })

  it('says a holder that cannot be reached is unreachable, without the socket error', async () => {
    const u = await upstream((res) => res.end())
    u.server.close()
    const res = await relay(await holding(u.url))
    expect(res.status).toBe(404)
    const text = await res.text()
    expect(text).toContain('w1: unreachable')
    expect(text).not.toMatch(/ECONNREFUSED|127\.0\.0\.1/)
  })

  it('relays the bytes of a holder that answers', async () => {
    const u = await upstream((res) => res.writeHead(200).end('the product'))
    upstreams.push(u)
    const res = await relay(await holding(u.url))
    expect(res.status).toBe(200)
    expect(await res.text()).toBe('the product')
  })
})
