/**
 * Limits on a job, through a real scheduler, initiator and worker agent in this process (on
 * SQLite): an artifact's step may say how long its jobs' attempts run (`timeoutMs`), as a
 * packet's job may, and an attempt running longer fails with reason `timeout` (a bad value is a
 * 400 naming the field); the worker's output caps fail a job that writes too much with reason
 * `output-too-large`; and a worker that stops ends what its jobs left running.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
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

/** Waits for a condition, up to a bound; answers whether it came. */
async function until(condition: () => boolean, ms = 10_000): Promise<boolean> {
  const end = Date.now() + ms
  while (!condition()) {
    if (Date.now() > end) return false
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  return true
}

/** Whether a process can still run (a zombie no one reaped cannot). */
function running(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch {
    return false
  }
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  return !['Z', 'X'].includes(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0]!)
}

describe('limits on a job', () => {
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
      maxStdoutBytes: 1024,
      killGraceMs: 200,
      graceMs: 100,
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
    await ana.events(order.orderId, () => {})
    expect((await ana.order(order.orderId)).fulfilment.state).toBe('failed')
    const [, work] = await ana.jobs(order.orderId)
    const { job, attempts } = await ana.job(work!.id)
    expect(job.timeoutMs).toBe(300)
    expect(attempts.map((a) => a.reason)).toEqual(['timeout'])
  })

  it('fail a job past the worker’s stdout cap with reason output-too-large', async () => {
    const order = await ana.submit({
      artifact: {
        project: 'p',
        steps: [{ kind: 'parallel', op: { exec: ['sh', '-c', 'head -c 5000 /dev/zero'] } }],
      },
    })
    await ana.events(order.orderId, () => {})
    const [work] = await ana.jobs(order.orderId)
    const { attempts } = await ana.job(work!.id)
    expect(attempts.map((a) => [a.reason, a.message])).toEqual([
      ['output-too-large', 'stdout passed its cap of 1024 bytes'],
    ])
  })

  it('end with the worker: a stopping worker ends what its jobs left running', async () => {
    const bg = join(dir, 'bg')
    await ana.submit({
      artifact: {
        project: 'p',
        steps: [
          {
            kind: 'parallel',
            op: { exec: ['sh', '-c', `sleep 60 & echo $! > ${bg}.tmp; mv ${bg}.tmp ${bg}; wait`] },
          },
        ],
      },
    })
    expect(await until(() => existsSync(bg))).toBe(true)
    const pid = Number(readFileSync(bg, 'utf8'))
    expect(running(pid)).toBe(true)
    await agent.stop()
    expect(await until(() => !running(pid), 2000)).toBe(true)
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
