/**
 * `GET /v1/targets/:id/fulfilments` over loopback with a real store on both backends: a target's
 * attempts newest first, filtered by state and limited, the running ones from memory and the
 * ended ones from the store; a workbench sees its own orders' attempts only, a worker its own
 * target's only; a push target's attempts show what runs them there; `lockstep targets NAME`
 * prints them.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { LockstepClient } from '../../src/client/client.ts'
import { main } from '../../src/cli/main.ts'
import { FakeClock } from '../../src/core/clock.ts'
import { LockstepError } from '../../src/core/errors.ts'
import type { Assignment } from '../../src/core/protocol.ts'
import { SchedulerService } from '../../src/service/service.ts'
import { startServer } from '../../src/server/server.ts'
import type { RunningServer } from '../../src/server/server.ts'
import type { TargetDriver } from '../../src/targets/target-driver.ts'
import { checkLeaks } from '../leaks.ts'
import { backends } from '../store/backends.ts'
import type { Backend } from '../store/backends.ts'

const tokens = [
  { role: 'workbench' as const, name: 'ana', token: 'ana-token-123' },
  { role: 'workbench' as const, name: 'bob', token: 'bob-token-123' },
  { role: 'viewer' as const, name: 'vera', token: 'vera-token-123' },
  { role: 'worker' as const, name: 'w1', token: 'worker-token-1' },
  { role: 'worker' as const, name: 'w2', token: 'worker-token-2' },
  { role: 'admin' as const, name: 'ops', token: 'admin-token-1' },
]
const op = { builtin: 'noop' }
const REPORT = 'https://example.com/runs/1/report.html'

const opened = checkLeaks()

async function refused(p: Promise<unknown>): Promise<[number, string]> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  )
  expect(e).toBeInstanceOf(LockstepError)
  return [(e as LockstepError).status, (e as LockstepError).code]
}

/** A cluster's driver as far as the API asks it: each attempt runs in a Pod of its own. */
const cluster: TargetDriver = {
  id: 'k1',
  registration: undefined,
  availability: () => 1,
  start: () => new Promise(() => {}),
  stop: () => {},
  close: () => Promise.resolve(),
  unit: (a) => ({ name: `pod-${a.jobId.slice(-6)}-${a.attempt}`, phase: 'Running' }),
}

describe.each(backends)('attempts on a target: %s', (_name, make) => {
  let backend: Backend
  let clock: FakeClock
  let service: SchedulerService
  let server: RunningServer
  const client = (token: string) => new LockstepClient({ url: server.url, token })

  beforeEach(async () => {
    backend = make('fulfilments')
    clock = new FakeClock(Date.now() - 60_000)
    service = opened.service(await SchedulerService.start({ store: backend.open(), clock }), {
      clock,
    })
    server = opened.server(await startServer({ service, port: 0, tokens, drivers: [cluster] }))
  })

  afterEach(async () => {
    await server.close()
    await service.close()
    await backend.destroy()
  })

  /**
   * On w1, a second apart: ana's `ok` (succeeded, with an artefact), `bad` (failed, exit 2) and
   * `slow` (running), and bob's `solo` (succeeded; his order has ended and left memory).
   */
  async function history(): Promise<Record<string, Assignment>> {
    const worker = client('worker-token-1')
    await worker.register({ id: 'w1', slots: 4 })
    const ana = await client('ana-token-123').submit({
      packet: {
        name: 'p',
        jobs: [
          { name: 'ok', op },
          { name: 'bad', op, failure: { onExhausted: 'continue' } },
          { name: 'slow', op },
        ],
      },
    })
    await client('bob-token-123').submit({ packet: { name: 'q', jobs: [{ name: 'solo', op }] } })
    const names = new Map(
      (await client('ana-token-123').jobs(ana.orderId)).map((j) => [j.id, j.name]),
    )
    const by: Record<string, Assignment> = {}
    for (let i = 0; i < 4; i++) {
      clock.advance(1000)
      const [a] = (await worker.heartbeat('w1', { free: 1 })).assignments
      by[names.get(a!.jobId) ?? 'solo'] = a!
    }
    const result = (name: string, r: object) => ({
      jobId: by[name]!.jobId,
      attempt: 1,
      result: { ok: true, ...r },
    })
    clock.advance(1000)
    await worker.heartbeat('w1', {
      results: [
        result('ok', { artefacts: [REPORT] }),
        result('bad', { ok: false, exitCode: 2, message: 'no input' }),
        result('solo', {}),
      ],
    })
    await service.durable()
    return by
  }

  const listed = (attempts: { jobId: string; state: string }[], by: Record<string, Assignment>) =>
    attempts.map((a) => [Object.keys(by).find((n) => by[n]!.jobId === a.jobId), a.state])

  it('lists the newest first, by state and limit, running ones from memory, ended ones stored', async () => {
    const by = await history()
    const ops = client('admin-token-1')
    const all = await ops.fulfilments('w1')
    const order = Object.keys(by).reverse()
    expect(listed(all, by)).toEqual(
      order.map((n) => [n, n === 'slow' ? 'running' : n === 'bad' ? 'failed' : 'succeeded']),
    )
    expect(all.find((a) => a.jobId === by.ok!.jobId)).toMatchObject({
      target: 'w1',
      attempt: 1,
      artefacts: [REPORT],
    })
    expect(all.find((a) => a.jobId === by.bad!.jobId)).toMatchObject({
      reason: 'exit-code',
      exitCode: 2,
      message: 'no input',
    })
    expect(listed(await ops.fulfilments('w1', { state: 'running' }), by)).toEqual([
      ['slow', 'running'],
    ])
    expect(listed(await ops.fulfilments('w1', { state: 'failed' }), by)).toEqual([
      ['bad', 'failed'],
    ])
    expect(listed(await ops.fulfilments('w1', { limit: 2 }), by)).toEqual(
      listed(all, by).slice(0, 2),
    )
    expect(await ops.fulfilments('w1', { state: 'cancelled' })).toEqual([])
    // What a push loop adopts at start: the attempts the engine considers running there.
    expect(service.runningOn('w1')).toEqual([{ jobId: by.slow!.jobId, attempt: 1 }])
    expect(service.runningOn('nowhere')).toEqual([])

    expect(await refused(ops.fulfilments('nowhere'))).toEqual([404, 'TARGET_NOT_FOUND'])
    for (const query of ['limit=0', 'limit=1001', 'state=lost']) {
      const res = await fetch(`${server.url}/v1/targets/w1/fulfilments?${query}`, {
        headers: { authorization: 'Bearer admin-token-1' },
      })
      const body = (await res.json()) as { error: { issues: { path: string }[] } }
      expect([res.status, body.error.issues[0]!.path]).toEqual([
        400,
        query.split('=')[0] === 'limit' ? 'query.limit' : 'query.state',
      ])
    }
  })

  it("shows a workbench its own orders' attempts only, a worker its own target's only", async () => {
    const by = await history()
    const names = async (token: string) =>
      listed(await client(token).fulfilments('w1'), by).map(([n]) => n)
    expect(await names('ana-token-123')).toEqual(['slow', 'bad', 'ok'])
    expect(await names('bob-token-123')).toEqual(['solo'])
    expect(await names('vera-token-123')).toEqual(['solo', 'slow', 'bad', 'ok'])
    expect(await names('worker-token-1')).toEqual(['solo', 'slow', 'bad', 'ok'])
    expect(await refused(client('worker-token-2').fulfilments('w1'))).toEqual([403, 'FORBIDDEN'])
    // Not even whether another's target exists.
    expect(await refused(client('worker-token-2').fulfilments('nowhere'))).toEqual([
      403,
      'FORBIDDEN',
    ])
    expect(await client('bob-token-123').fulfilments('w1', { state: 'running' })).toEqual([])
  })

  it("shows what runs a push target's attempt, and the CLI prints a target's attempts", async () => {
    await history()
    await service.registerTarget({ id: 'k1', kind: 'kubernetes', slots: 1 })
    const order = await client('ana-token-123').submit({
      packet: { name: 'img', jobs: [{ name: 'pod', op: { image: 'busybox' }, target: 'k1' }] },
    })
    clock.advance(1000)
    const [started] = await service.cycle(new Map([['k1', 1]]))
    expect(started!.orderId).toBe(order.orderId)
    const [pod] = await client('ana-token-123').fulfilments('k1')
    expect(pod).toMatchObject({
      jobId: started!.jobId,
      state: 'running',
      unit: { name: `pod-${started!.jobId.slice(-6)}-1`, phase: 'Running' },
    })

    const lines: string[] = []
    const cli = (...args: string[]) =>
      main([...args, '--server', server.url, '--token', 'admin-token-1'], (l) => lines.push(l))
    expect(await cli('targets', 'k1')).toBe(0)
    expect(lines[0]).toMatch(/^k1 +kubernetes +live +1\/1 running/)
    expect(lines[1]).toMatch(
      new RegExp(`^  running +${started!.jobId}  attempt 1  pod-\\S+ Running +\\d+s$`),
    )
    lines.length = 0
    expect(await cli('targets', 'w1', '--state', 'failed')).toBe(0)
    expect(lines).toHaveLength(2)
    expect(lines[1]).toMatch(
      /^ {2}failed +\S+ {2}attempt 1 {2}- +\d+[smh] {2}exit-code, exit code 2$/,
    )
    lines.length = 0
    expect(await cli('targets')).toBe(0)
    expect(lines.map((l) => l.split(' ')[0])).toEqual(['initiator', 'w1', 'k1'])
  })
})
