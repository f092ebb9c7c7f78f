/**
 * Event streams that resume, over loopback with a real store on both backends: every stored event
 * goes out with its seq as the SSE id; a stream asked for with `Last-Event-ID` (or `?after=`)
 * replays the order's stored events after it, then carries on live, so that a client that lost
 * its stream hears every event of the log once, in order; an ended order's stream replays and
 * ends; owners and bad positions are refused as any other request.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { LockstepClient } from '../../src/client/client.ts'
import { serverSentEvents } from '../../src/client/server-sent.ts'
import { SchedulerService } from '../../src/service/service.ts'
import { startServer } from '../../src/server/server.ts'
import type { RunningServer } from '../../src/server/server.ts'
import { checkLeaks } from '../leaks.ts'
import { backends } from '../store/backends.ts'
import type { Backend } from '../store/backends.ts'

const tokens = [
  { role: 'workbench' as const, name: 'ana', token: 'ana-token-123' },
  { role: 'workbench' as const, name: 'bob', token: 'bob-token-123' },
  { role: 'worker' as const, name: 'w1', token: 'worker-token-1' },
]
const op = { builtin: 'noop' }
/** A chain of `n` jobs: each starts when the one before succeeds. */
const chain = (n: number) => ({
  name: 'chain',
  jobs: Array.from({ length: n }, (_, i) => ({
    name: `j${i}`,
    op,
    ...(i > 0 ? { after: [`j${i - 1}`] } : {}),
  })),
})

/** One server-sent event as it came over the wire. */
interface Sent {
  id?: number
  type: string
  data: Record<string, unknown>
}

const opened = checkLeaks()

describe.each(backends)('event streams that resume: %s', (_name, make) => {
  let backend: Backend
  let service: SchedulerService
  let server: RunningServer
  let ana: LockstepClient
  let worker: LockstepClient

  beforeEach(async () => {
    backend = make('event-resume')
    service = opened.service(await SchedulerService.start({ store: backend.open() }))
    server = opened.server(await startServer({ service, port: 0, tokens }))
    ana = new LockstepClient({ url: server.url, token: 'ana-token-123' })
    worker = new LockstepClient({ url: server.url, token: 'worker-token-1' })
    await worker.register({ id: 'w1', slots: 1 })
  })

  afterEach(async () => {
    await server.close()
    await service.close()
    await backend.destroy()
  })

  /**
   * Opens an order's stream; `take` reads events until `stop` says so (then the stream is cut)
   * or the server ends it.
   */
  async function open(query: string, headers: Record<string, string> = {}, token = 'ana') {
    const abort = new AbortController()
    const res = await fetch(`${server.url}/v1/events?${query}`, {
      headers: { authorization: `Bearer ${token}-token-123`, ...headers },
      signal: abort.signal,
    })
    const seen: Sent[] = []
    const take = async (stop: (seen: Sent[]) => boolean = () => false) => {
      try {
        for await (const e of serverSentEvents(res.body!)) {
          if (e.data === '') continue
          seen.push({
            ...(e.id === undefined ? {} : { id: Number(e.id) }),
            type: e.event,
            data: JSON.parse(e.data) as Record<string, unknown>,
          })
          if (stop(seen)) {
            abort.abort()
            return { seen, ended: false }
          }
        }
        return { seen, ended: true }
      } catch (e) {
        if (abort.signal.aborted) return { seen, ended: false }
        throw e
      }
    }
    return { res, take, cut: () => abort.abort() }
  }

  /** Runs the worker's jobs until the order ends, one heartbeat per job. */
  async function runAll(orderId: string): Promise<void> {
    let results: { jobId: string; attempt: number; result: { ok: boolean } }[] = []
    for (;;) {
      const reply = await worker.heartbeat('w1', { results, free: 1, waitMs: 0 })
      results = reply.assignments.map((a) => ({
        jobId: a.jobId,
        attempt: a.attempt,
        result: { ok: true },
      }))
      if ((await ana.order(orderId)).fulfilment.state !== 'running' && results.length === 0) return
    }
  }

  /** The order's stored events, as (seq, type). */
  async function logged(orderId: string): Promise<[number, string][]> {
    return (await service.storedEvents(0, 1000, orderId)).map((e) => [e.seq, e.type])
  }

  const ids = (seen: Sent[]) =>
    seen.filter((e) => e.id !== undefined).map((e) => [e.id!, e.type] as [number, string])

  it('sends each stored event with its seq as the id, and ends after the ending event', async () => {
    const order = await ana.submit({ packet: chain(3) })
    const stream = await open(`order=${order.orderId}`)
    const taken = stream.take()
    await runAll(order.orderId)
    const { seen, ended } = await taken
    expect(ended).toBe(true)
    // Opened after the submission (and its first job's readiness): no replay, everything after
    // it live, each with its seq.
    expect(ids(seen)).toEqual((await logged(order.orderId)).slice(2))
    expect(seen[0]!.type).toBe('fulfilment')
    const ending = seen.filter((e) => e.id !== undefined).at(-1)!
    expect(ending).toMatchObject({ type: 'order:succeeded', data: { seq: ending.id } })
    expect(seen.at(-1)).toMatchObject({ type: 'fulfilment', data: { state: 'succeeded' } })
    expect(seen.filter((e) => e.type === 'fulfilment').every((e) => e.id === undefined)).toBe(true)
  })

  it('resumes a cut stream after Last-Event-ID: no event lost, none twice', async () => {
    const order = await ana.submit({ packet: chain(4) })
    const first = await open(`order=${order.orderId}&after=0`)
    const firstTaken = first.take((seen) => seen.some((e) => e.type === 'job:succeeded'))
    const running = runAll(order.orderId)
    const { seen: before, ended } = await firstTaken
    expect(ended).toBe(false)
    const last = ids(before).at(-1)![0]
    const second = await open(`order=${order.orderId}`, { 'last-event-id': String(last) })
    const { seen: after } = await second.take()
    await running
    // The replay starts right after the last id heard and runs on live to the order's end.
    expect([...ids(before), ...ids(after)]).toEqual(await logged(order.orderId))
    expect(after.at(-1)).toMatchObject({ type: 'fulfilment', data: { state: 'succeeded' } })
  })

  it('replays from the log while the order runs on: the replay and the live part meet without a gap', async () => {
    const order = await ana.submit({ packet: chain(12) })
    const running = runAll(order.orderId)
    // Opened while jobs succeed: part of the log is replayed, the rest heard live.
    await new Promise((r) => setTimeout(r, 20))
    const { seen, ended } = await (
      await open(`order=${order.orderId}`, { 'last-event-id': '0' })
    ).take()
    await running
    expect(ended).toBe(true)
    expect(ids(seen)).toEqual(await logged(order.orderId))
  })

  it("replays an ended order's events after the position and ends; ?after= is the same", async () => {
    const order = await ana.submit({ packet: chain(2) })
    await runAll(order.orderId)
    const all = await logged(order.orderId)
    const from = all[2]![0]
    const byHeader = await (
      await open(`order=${order.orderId}`, { 'last-event-id': String(from) })
    ).take()
    const byQuery = await (await open(`order=${order.orderId}&after=${from}`)).take()
    for (const { seen, ended } of [byHeader, byQuery]) {
      expect(ended).toBe(true)
      expect(ids(seen)).toEqual(all.slice(3))
      expect(seen.at(-1)).toMatchObject({ type: 'fulfilment', data: { state: 'succeeded' } })
    }
    // Heard to the end already: only the final fulfilment, and the stream ends.
    const done = await (await open(`order=${order.orderId}&after=${all.at(-1)![0]}`)).take()
    expect(done).toMatchObject({ ended: true, seen: [{ type: 'fulfilment' }] })
  })

  it("replays only the order's own events, in the log's form", async () => {
    const other = await ana.submit({ packet: chain(1) })
    const order = await ana.submit({ packet: chain(1) })
    await runAll(other.orderId)
    await runAll(order.orderId)
    const { seen } = await (await open(`order=${order.orderId}&after=0`)).take()
    expect(ids(seen)).toEqual(await logged(order.orderId))
    expect(seen.every((e) => e.id === undefined || e.data.orderId === order.orderId)).toBe(true)
    expect(seen[0]).toMatchObject({
      type: 'order:submitted',
      data: { orderId: order.orderId, jobs: 1, source: { kind: 'packet', name: 'chain' } },
    })
  })

  it('numbers events on after a restart: the log has no gap, and a stream resumes across it', async () => {
    const order = await ana.submit({ packet: chain(2) })
    const before = await logged(order.orderId)
    await server.close()
    await service.close()
    service = opened.service(await SchedulerService.start({ store: backend.open() }))
    server = opened.server(await startServer({ service, port: 0, tokens }))
    ana = new LockstepClient({ url: server.url, token: 'ana-token-123' })
    worker = new LockstepClient({ url: server.url, token: 'worker-token-1' })
    await worker.register({ id: 'w1', slots: 1 })
    await runAll(order.orderId)
    const all = (await service.storedEvents(0, 1000)).map((e) => e.seq)
    expect(all).toEqual(all.map((_, i) => i + 1))
    const { seen } = await (
      await open(`order=${order.orderId}`, { 'last-event-id': String(before.at(-1)![0]) })
    ).take()
    expect(ids(seen)).toEqual((await logged(order.orderId)).slice(before.length))
  })

  it("refuses another owner's order as not found, and a position that is not a number", async () => {
    const order = await ana.submit({ packet: chain(1) })
    const bobs = await open(`order=${order.orderId}`, { 'last-event-id': '0' }, 'bob')
    expect(bobs.res.status).toBe(404)
    expect(await bobs.res.json()).toMatchObject({ error: { code: 'ORDER_NOT_FOUND' } })
    const bad = await open(`order=${order.orderId}`, { 'last-event-id': 'soon' })
    expect(bad.res.status).toBe(400)
    expect(await bad.res.json()).toMatchObject({
      error: { code: 'VALIDATION_FAILED', issues: [{ path: 'header.last-event-id' }] },
    })
  })
})
