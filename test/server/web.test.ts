/**
 * The dashboard's files: public, each with its content type and the page's Content-Security-
 * Policy; only the files named are served, so an unknown path or one that climbs out with `..`
 * is a 404, never a file from disk.
 */
import { createHash } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { SchedulerService } from '../../src/service/service.ts'
import { startServer } from '../../src/server/server.ts'
import type { RunningServer } from '../../src/server/server.ts'
import { importMapOf, webDir } from '../../src/server/routes/web.ts'
import { SqliteStore } from '../../src/store/sqlite-store.ts'
import { checkLeaks } from '../leaks.ts'

const opened = checkLeaks()
let dir: string
let service: SchedulerService
let server: RunningServer

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'lockstep-web-'))
  service = opened.service(
    await SchedulerService.start({ store: new SqliteStore({ path: join(dir, 'db') }) }),
  )
  server = opened.server(
    await startServer({
      service,
      port: 0,
      tokens: [{ role: 'workbench', name: 'ana', token: 'ana-token-123' }],
    }),
  )
})

afterEach(async () => {
  await server.close()
  await service.close()
  rmSync(dir, { recursive: true, force: true })
})

/** A GET with the path sent exactly as written (fetch would resolve `..` before sending). */
function rawGet(path: string): Promise<{ status: number; body: string }> {
  const url = new URL(server.url)
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, path, method: 'GET' }, (res) => {
      let body = ''
      res.on('data', (d: Buffer) => (body += d.toString()))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('error', reject)
    req.end()
  })
}

describe('the dashboard’s files', () => {
  it.each([
    ['/', 'text/html', '<script type="importmap">'],
    ['/ui/app.js', 'text/javascript', 'render('],
    ['/ui/views/order.js', 'text/javascript', 'OrderView'],
    ['/ui/style.css', 'text/css', '--succeeded'],
    ['/ui/states.css', 'text/css', '.node rect'],
    ['/ui/vendor/preact.mjs', 'text/javascript', 'export'],
    ['/ui/vendor/hooks.mjs', 'text/javascript', 'from"preact"'],
    ['/ui/vendor/htm.mjs', 'text/javascript', 'export'],
    ['/ui/vendor/dagre.mjs', 'text/javascript', 'export'],
  ])('%s answers without a token, as %s, under the CSP', async (path, type, holds) => {
    const res = await fetch(`${server.url}${path}`)
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toContain(type)
    expect(res.headers.get('x-content-type-options')).toBe('nosniff')
    const csp = res.headers.get('content-security-policy') ?? ''
    expect(csp).toContain("default-src 'self'")
    expect(csp).toContain("frame-ancestors 'none'")
    expect(csp).not.toContain('unsafe-inline')
    expect(await res.text()).toContain(holds)
  })

  it('allows the page’s one inline script by the hash of its text', async () => {
    const res = await fetch(`${server.url}/`)
    const html = await res.text()
    const hash = createHash('sha256').update(importMapOf(html)).digest('base64')
    expect(res.headers.get('content-security-policy')).toContain(
      `script-src 'self' 'sha256-${hash}'`,
    )
    expect(html).toBe(readFileSync(join(webDir, 'index.html'), 'utf8'))
    // No other inline script or style, no inline handler.
    expect(html.match(/<script/g)).toHaveLength(2)
    expect(html).not.toMatch(/ style=| on[a-z]+=|<style/)
  })

  it.each([
    '/ui/nothing.js',
    '/ui/vendor/react.mjs',
    '/ui/vendor/../../package.json',
    '/ui/../package.json',
    '/ui/%2e%2e/%2e%2e/package.json',
    '/ui/vendor/..%2f..%2fpackage.json',
    '/ui/',
  ])('%s is a 404 that reads nothing from disk', async (path) => {
    const res = await rawGet(path)
    expect(res.status).toBe(404)
    expect(res.body).not.toContain('"devDependencies"')
  })

  it('keeps the data behind the token: the API still answers 401 without one', async () => {
    expect((await fetch(`${server.url}/v1/orders`)).status).toBe(401)
  })

  it('leaves the dashboard out of the API document', async () => {
    const doc = (await (await fetch(`${server.url}/openapi.json`)).json()) as {
      paths: Record<string, unknown>
    }
    expect(Object.keys(doc.paths).filter((p) => p === '/' || p.startsWith('/ui'))).toEqual([])
    expect(doc.paths['/v1/orders/{id}/locks']).toBeDefined()
  })
})
