/**
 * A web page on another site cannot submit an order to a server without tokens (the open,
 * loopback case): a browser sends a cross-site POST without a CORS preflight only with a body
 * an HTML form or a no-CORS fetch can make (`text/plain`, a form's encodings, or a Blob with no
 * type at all), and the server reads only JSON and YAML. Each is refused with 415 before any
 * route runs, and nothing is stored.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, expect, it } from 'vitest'
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
  dir = mkdtempSync(join(tmpdir(), 'lockstep-cross-site-'))
  service = opened.service(
    await SchedulerService.start({ store: new SqliteStore({ path: join(dir, 'db') }) }),
  )
  server = opened.server(await startServer({ service, port: 0 }))
})

afterEach(async () => {
  await server.close()
  await service.close()
  rmSync(dir, { recursive: true, force: true })
})

const order = JSON.stringify({
  packet: { name: 'evil', jobs: [{ name: 'a', op: { exec: ['sh', '-c', 'id'] } }] },
})

/** What a cross-site page may send without a preflight: the body, with its Content-Type. */
const crossSite: [string, string | URLSearchParams | FormData | Blob][] = [
  ['text/plain', order],
  ['text/plain;charset=UTF-8', order],
  // A parameter that names JSON does not make the body JSON.
  ['text/plain; x="application/json"', order],
  ['application/x-www-form-urlencoded', new URLSearchParams({ [order]: '' })],
  [
    'multipart/form-data',
    (() => {
      const form = new FormData()
      form.set('packet', order)
      return form
    })(),
  ],
  ['no Content-Type (a Blob without a type)', new Blob([order])],
]

it.each(crossSite)(
  'refuses POST /v1/orders sent as %s with 415 and stores nothing',
  async (type, body) => {
    const headers: Record<string, string> = {
      origin: 'https://evil.example',
      'sec-fetch-site': 'cross-site',
    }
    // FormData and URLSearchParams set their own Content-Type (with the form's boundary).
    if (type.startsWith('text/')) headers['content-type'] = type
    const res = await fetch(`${server.url}/v1/orders`, { method: 'POST', headers, body })
    const answer = (await res.json()) as { error?: { code: string } }
    expect([res.status, answer.error?.code]).toEqual([415, 'UNSUPPORTED_MEDIA_TYPE'])
    expect(await service.listOrders(10)).toEqual([])
    expect(await service.store.listOrders(10)).toEqual([])
  },
)

it('takes the same order sent as JSON: the refusals above are about the body’s type', async () => {
  const res = await fetch(`${server.url}/v1/orders`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: order,
  })
  expect(res.status).toBe(201)
  expect(await service.listOrders(10)).toHaveLength(1)
})
