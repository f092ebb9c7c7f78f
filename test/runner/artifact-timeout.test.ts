/**
 * An artifact's step may say how long its jobs' attempts run (`timeoutMs`), as a packet's job
 * may: an attempt running longer fails with reason `timeout`, and a bad value is a 400 naming
 * the field. A real scheduler, initiator and worker agent in this process, on SQLite.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { LockstepClient } from '../../src/client/client.ts'
import { LockstepError } from '../../src/core/errors.ts'
import { startServer } from '../../src/server/server.ts'
import type { RunningServer } from '../../src/server/server.ts'
import { SchedulerService } from '../../src/service/service.ts'
import { InitiatorDriver } from '../../src/targets/initiator.ts'
import { PushLoop } from '../../src/targets/push-loop.ts'
import { WorkerAgent } from '../../src/worker/agent.ts'
import { checkLeaks } from '../leaks.ts'
import { sqliteBackend } from '../store/backends.ts'
import type { Backend } from '../store/backends.ts'

const ANA = 'ana-token-123'
const WORKER = 'worker-token-1'
const tokens = [
  { role: 'workbench' as const, name: 'ana', token: ANA },
  { role: 'worker' as const, name: '*', token: WORKER },
]

const opened = checkLeaks()

describe('an artifact step’s timeoutMs', () => {
  let backend: Backend
  let dir: string
  let service: SchedulerService
  let server: RunningServer
  let agent: WorkerAgent
  let push: PushLoop
  let ana: LockstepClient

  beforeEach(async () => {
    backend = sqliteBackend()
    dir = mkdtempSync(join(tmpdir(), 'lockstep-artifact-timeout-'))
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
      data: { p: '/dev/null' },
      cacheDir: join(dir, 'w1'),
    })
    ana = new LockstepClient({ url: server.url, token: ANA })
  })

  afterEach(async () => {
    await agent.stop()
    await server.close()
    await push.close()
    await service.close()
    await backend.destroy()
    rmSync(dir, { recursive: true, force: true })
  })

  it('fails a job that runs longer with reason timeout, as a packet job', async () => {
    const order = await ana.submit({
      artifact: {
        project: 'p',
        steps: [
          { kind: 'initialize', op: { builtin: 'noop' } },
          { kind: 'parallel', op: { exec: ['sleep', '30'] }, timeoutMs: 300 },
        ],
      },
    })
    await ana.follow(order.orderId, () => {})
    expect((await ana.order(order.orderId)).fulfilment.state).toBe('failed')
    const [, work] = await ana.jobs(order.orderId)
    const { job, attempts } = await ana.job(work!.id)
    expect(job.timeoutMs).toBe(300)
    expect(attempts.map((a) => a.reason)).toEqual(['timeout'])
  })

  it('is in the Step schema of the OpenAPI document, with its bounds', async () => {
    const doc = (await (await fetch(`${server.url}/openapi.json`)).json()) as {
      components: { schemas: { Artifact: unknown; Step: unknown } }
    }
    expect(JSON.stringify(doc.components.schemas.Artifact)).toContain(
      '"items":{"$ref":"#/components/schemas/Step"}',
    )
    expect(JSON.stringify(doc.components.schemas.Step)).toMatch(
      /"timeoutMs":\{[^}]*"type":"integer"[^}]*"minimum":1[^}]*"maximum":604800000/,
    )
  })

  it.each([
    { timeoutMs: 0, message: 'Too small' },
    { timeoutMs: 8 * 86_400_000, message: 'Too big' },
    { timeoutMs: 2.5, message: 'expected a whole number' },
  ])('refuses $timeoutMs with a 400 naming the field', async ({ timeoutMs, message }) => {
    const refusal = await ana
      .submit({
        artifact: {
          project: 'p',
          steps: [{ kind: 'parallel', op: { exec: ['true'] }, timeoutMs }],
        },
      })
      .then(
        () => undefined,
        (e: unknown) => e,
      )
    expect(refusal).toBeInstanceOf(LockstepError)
    expect((refusal as LockstepError).status).toBe(400)
    expect((refusal as LockstepError).message).toContain(`steps[0].timeoutMs: ${message}`)
  })
})
