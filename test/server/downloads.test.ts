/**
 * Downloads, on the routes that send a product's bytes: a server started without
 * `allowDownload` refuses them to a workbench token on the relay and on the initiator's route,
 * while worker tokens still fetch them there; a worker agent serves its products to worker
 * tokens only. A real in-process initiator and worker agent make the products.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { Readable } from 'node:stream'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { LockstepClient } from '../../src/client/client.ts'
import { unpack } from '../../src/runner/archive.ts'
import { startServer } from '../../src/server/server.ts'
import type { RunningServer } from '../../src/server/server.ts'
import { SchedulerService } from '../../src/service/service.ts'
import { InitiatorDriver } from '../../src/targets/initiator.ts'
import { PushLoop } from '../../src/targets/push-loop.ts'
import { WorkerAgent } from '../../src/worker/agent.ts'
import { checkLeaks } from '../leaks.ts'
import { backends } from '../store/backends.ts'
import type { Backend } from '../store/backends.ts'

const ANA = 'ana-token-123'
const WORKER = 'worker-token-1'
const tokens = [
  { role: 'workbench' as const, name: 'ana', token: ANA },
  { role: 'worker' as const, name: '*', token: WORKER },
]

const opened = checkLeaks()

describe.each(backends)('downloads: %s', (_name, make) => {
  let backend: Backend
  let dir: string
  let service: SchedulerService
  let server: RunningServer
  let agent: WorkerAgent
  let push: PushLoop

  beforeEach(async () => {
    backend = make('downloads')
    dir = mkdtempSync(join(tmpdir(), 'lockstep-downloads-'))
    service = opened.service(await SchedulerService.start({ store: backend.open() }))
    const initiator = new InitiatorDriver(service, { dir: join(dir, 'initiator'), token: WORKER })
    await initiator.open()
    push = new PushLoop(service, [initiator])
    server = opened.server(await startServer({ service, port: 0, tokens, products: [initiator] }))
    await push.start()
    agent = await WorkerAgent.start({
      server: server.url,
      token: WORKER,
      id: 'w1',
      data: { clinics: resolve('examples/data/clinic-1.csv') },
      cacheDir: join(dir, 'w1'),
    })
  })

  afterEach(async () => {
    await agent.stop()
    await server.close()
    await push.close()
    await service.close()
    await backend.destroy()
    rmSync(dir, { recursive: true, force: true })
  })

  /** An initiator job, then a job on w1 that writes `out/file`; their product ids once done. */
  async function products(): Promise<{ initiator: string; worker: string }> {
    const ana = new LockstepClient({ url: server.url, token: ANA })
    const order = await ana.submit({
      artifact: {
        project: 'clinics',
        steps: [
          { kind: 'initialize', op: { builtin: 'noop' } },
          { kind: 'parallel', op: { exec: ['sh', '-c', 'printf made > "$LOCKSTEP_OUT/file"'] } },
        ],
      },
    })
    await ana.events(order.orderId, () => {})
    expect((await ana.order(order.orderId)).fulfilment.state).toBe('succeeded')
    const [init, work] = await ana.jobs(order.orderId)
    return { initiator: init!.id, worker: work!.id }
  }

  const get = (url: string, token?: string) =>
    fetch(url, token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } })

  /** The status and error code of an answer; what it sent instead when it is no error. */
  async function refused(res: Response): Promise<[number, string]> {
    const text = await res.text()
    try {
      return [res.status, (JSON.parse(text) as { error: { code: string } }).error.code]
    } catch {
      return [res.status, `no error but ${text.length} bytes: ${JSON.stringify(text.slice(0, 40))}`]
    }
  }

  async function archive(res: Response): Promise<string> {
    expect(res.status).toBe(200)
    const to = mkdtempSync(join(dir, 'got-'))
    await unpack(Readable.fromWeb(res.body as never), to)
    return to
  }

  it('refuses a workbench the bytes of every product when downloads are off; workers get them', async () => {
    const p = await products()
    const relay = (id: string) => `${server.url}/v1/products/${id}/content`
    const initiator = (id: string) => `${server.url}/v1/targets/initiator/products/${id}`

    expect(await refused(await get(relay(p.worker), ANA))).toEqual([403, 'DOWNLOAD_DISABLED'])
    expect(await refused(await get(relay(p.initiator), ANA))).toEqual([403, 'DOWNLOAD_DISABLED'])
    expect(await refused(await get(initiator(p.initiator), ANA))).toEqual([
      403,
      'DOWNLOAD_DISABLED',
    ])

    // The same routes send the same products to a worker token.
    const relayed = await archive(await get(relay(p.worker), WORKER))
    expect(readFileSync(join(relayed, 'out', 'file'), 'utf8')).toBe('made')
    await archive(await get(initiator(p.initiator), WORKER))
  })

  it('serves a worker’s products from the worker to worker tokens only', async () => {
    const p = await products()
    const url = `${agent.productUrl}/products/${p.worker}`
    expect(await refused(await get(url, ANA))).toEqual([401, 'UNAUTHORIZED'])
    expect(await refused(await get(url))).toEqual([401, 'UNAUTHORIZED'])
    const fetched = await archive(await get(url, WORKER))
    expect(readFileSync(join(fetched, 'out', 'file'), 'utf8')).toBe('made')
  })
})
