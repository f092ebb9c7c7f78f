/**
 * The Host header must name the server (DNS rebinding defence): the loopback names with its
 * port, and the host of its public URL when it has one. Any other Host is a 421
 * HOST_NOT_ALLOWED before any route runs, so nothing changes in the store.
 */
import { request } from 'node:http'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { SchedulerService } from '../../src/service/service.ts'
import { startServer } from '../../src/server/server.ts'
import type { RunningServer } from '../../src/server/server.ts'
import { SqliteStore } from '../../src/store/sqlite-store.ts'
import { checkLeaks } from '../leaks.ts'

const opened = checkLeaks()

let dir: string
let service: SchedulerService
let server: RunningServer

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'lockstep-edge-'))
  service = opened.service(
    await SchedulerService.start({ store: new SqliteStore({ path: join(dir, 'db') }) }),
  )
  server = opened.server(
    await startServer({ service, port: 0, publicUrl: 'https://lockstep.example.org' }),
  )
})

afterEach(async () => {
  await server.close()
  await service.close()
  rmSync(dir, { recursive: true, force: true })
})

/** A request with the Host header given (fetch sets its own). */
function send(
  host: string,
  method = 'GET',
  path = '/healthz',
  body?: string,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: server.port,
        method,
        path,
        headers: { host, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      },
      (res) => {
        let text = ''
        res.on('data', (d: Buffer) => (text += d.toString()))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }))
      },
    )
    req.on('error', reject)
    req.end(body)
  })
}

describe('the Host header', () => {
  it.each([
    ['evil.example:PORT'],
    ['evil.example'],
    ['127.0.0.1.nip.io:PORT'],
    ['localhost:1'],
    ['lockstep.example.org.evil:443'],
  ])('refuses %s with 421 HOST_NOT_ALLOWED, and nothing changes', async (given) => {
    const host = given.replace('PORT', String(server.port))
    const res = await send(host, 'POST', '/v1/targets', JSON.stringify({ id: 'w1' }))
    expect(res.status).toBe(421)
    const body = JSON.parse(res.body) as { error: { code: string; message: string } }
    expect(body.error.code).toBe('HOST_NOT_ALLOWED')
    expect(body.error.message).toContain('--public-url')
    expect(service.targets().map((t) => t.target.id)).not.toContain('w1')
  })

  it.each([
    'localhost:PORT',
    '127.0.0.1:PORT',
    '[::1]:PORT',
    'LOCALHOST:PORT',
    'lockstep.example.org',
    'lockstep.example.org:443',
  ])('answers %s', async (given) => {
    const res = await send(given.replace('PORT', String(server.port)))
    expect(res.status).toBe(200)
  })
})
