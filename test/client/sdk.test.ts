/**
 * The SDK against a real `lockstep server` and real `lockstep worker` processes on loopback:
 * submitting an artifact, a packet and a stored packet; following an order as typed events to
 * its end, and across a dropped connection without losing or repeating one (checked against the
 * stored event log); cancelling; jobs and why one waits; logs; downloading to a directory; and
 * errors with the catalogue's codes.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { LockstepClient, ValidationError } from '../../src/client/index.ts'
import type { ArtifactInput, OrderEvent, PacketInput } from '../../src/client/index.ts'
import { central } from '../../src/core/analytics.ts'
import { freePort } from '../free-port.ts'
import { checkLeaks } from '../leaks.ts'
import { refusal } from '../refusal.ts'
import { sqliteBackend } from '../store/backends.ts'
import type { Backend } from '../store/backends.ts'
import { BOB, Cluster, allClinics, sh } from '../e2e/cluster.ts'
import { TcpProxy } from '../e2e/tcp-proxy.ts'

const opened = checkLeaks()

let backend: Backend
let cluster: Cluster

beforeEach(() => {
  backend = sqliteBackend()
  cluster = new Cluster({ databaseUrl: backend.url, opened })
})

afterEach(async () => {
  await cluster.stopAll()
  await backend.destroy()
})

/** Every event of `iterable`, in order. */
async function all(iterable: AsyncIterable<OrderEvent>): Promise<OrderEvent[]> {
  const out: OrderEvent[] = []
  for await (const e of iterable) out.push(e)
  return out
}

/** The log's events among those followed, as (seq, type). */
const logged = (events: OrderEvent[]) =>
  events.flatMap((e) => (e.type === 'fulfilment' ? [] : [[e.seq, e.type] as const]))

/** The order's events as the scheduler stored them, read from its database. */
async function stored(orderId: string): Promise<(readonly [number, string])[]> {
  const hex = orderId.replaceAll('-', '').toUpperCase()
  const rows = await backend.query<{ seq: number; type: string }>(
    `SELECT seq, type FROM events WHERE hex(order_id) = '${hex}' ORDER BY seq`,
  )
  return rows.map((r) => [Number(r.seq), r.type] as const)
}

/** A chain of jobs that each take a moment: an order that runs long enough to cut its stream. */
const slowChain = (n: number): PacketInput => ({
  name: 'slow-chain',
  jobs: Array.from({ length: n }, (_, i) => ({
    name: `step-${i}`,
    op: sh('sleep 0.2; echo step'),
    ...(i > 0 ? { after: [`step-${i - 1}`] } : {}),
  })),
})

describe('the SDK', () => {
  it('submits an artifact, follows it to its end as typed events, and reads the federated mean', async () => {
    await cluster.server()
    await cluster.clinics()
    const c = cluster.client()
    const artifact = parse(readFileSync('examples/federated-mean.yaml', 'utf8')) as ArtifactInput
    const order = await c.submitArtifact(artifact, { priority: 70 })
    expect(order).toMatchObject({ state: 'running', priority: 70, total: 4 })

    const events = await all(c.follow(order.orderId))
    // From the submission on, each stored event once and in order, then the final progress.
    expect(logged(events)).toEqual(await stored(order.orderId))
    const first = events.find((e) => e.type !== 'fulfilment')!
    expect(first.type).toBe('order:submitted')
    if (first.type === 'order:submitted') {
      expect(first.source).toMatchObject({ kind: 'artifact', name: 'clinics' })
      expect(first.jobs).toBe(4)
    }
    expect(events.filter((e) => e.type === 'job:succeeded')).toHaveLength(4)
    const last = events.at(-1)!
    expect(last.type === 'fulfilment' && last.fulfilment.state).toBe('succeeded')

    const expected = central('mean', allClinics(), { column: 'bmi' })
    const { value } = await c.result(order.orderId)
    expect((value as { mean: number }).mean).toBeCloseTo(expected.mean as number, 9)
  }, 60_000)

  it('submits a packet, downloads its products into a directory, and reads a job’s logs', async () => {
    await cluster.server()
    await cluster.worker('w1')
    const c = cluster.client()
    const packet = parse(readFileSync('examples/build.yaml', 'utf8')) as PacketInput
    const order = await c.submitPacket(packet)
    expect((await c.wait(order.orderId)).state).toBe('succeeded')

    const to = join(cluster.dir, 'build-products')
    const download = await c.download(order.orderId, to)
    expect(download).toEqual({
      dir: to,
      jobs: ['compile-a', 'compile-b', 'link', 'test'],
      missing: [],
    })
    expect(readFileSync(join(to, 'link', 'out', 'app'), 'utf8')).toBe('part a\npart b\n')
    expect(readFileSync(join(to, 'test', 'stdout'), 'utf8')).toBe('2\n')
    // A second download into the same folder would mix two runs: refused, naming the folder.
    const again = await refusal(c.download(order.orderId, to))
    expect(again).toBeInstanceOf(ValidationError)
    expect((again as ValidationError).issues[0]!.path).toBe('dir')

    const test = (await c.jobs(order.orderId)).find((j) => j.name === 'test')!
    const logs = await c.logs(test.id)
    expect(logs).toMatchObject({ stdout: '2\n', stderr: '' })
    expect(logs.attempts.map((a) => [a.attempt, a.target, a.state])).toEqual([
      [1, 'w1', 'succeeded'],
    ])
  }, 60_000)

  it('stores a packet and orders it by name; a failed job’s logs say why', async () => {
    await cluster.server()
    await cluster.worker('w1')
    const c = cluster.client()
    await c.createPacket({
      name: 'fails',
      jobs: [{ name: 'broken', op: sh('echo "no input file" >&2; exit 3') }],
    })
    const order = await c.submitStoredPacket('fails')
    expect(order.source).toEqual({ kind: 'packet', name: 'fails' })
    const final = await c.wait(order.orderId)
    expect(final.state).toBe('failed')
    const [broken] = await c.jobs(order.orderId)
    const logs = await c.logs(broken!.id)
    expect(logs.stdout).toBeUndefined()
    expect(logs.attempts[0]).toMatchObject({ state: 'failed', exitCode: 3 })
    expect(logs.attempts[0]!.message).toContain('no input file')
  }, 60_000)

  it('resumes a dropped stream: every stored event once, in order', async () => {
    // The SDK reaches the scheduler through a proxy the test cuts; the worker does not.
    const port = await freePort()
    const proxy = await new TcpProxy('127.0.0.1', port).listen()
    try {
      cluster.url = `http://127.0.0.1:${port}`
      await cluster.server(['--public-url', `http://127.0.0.1:${proxy.port}`])
      await cluster.worker('w1')
      const c = new LockstepClient({
        url: `http://127.0.0.1:${proxy.port}`,
        token: 'bench-token-123',
      })
      const order = await c.submitPacket(slowChain(6))
      const events: OrderEvent[] = []
      let cutWhileRunning = false
      for await (const e of c.follow(order.orderId, { retryMinMs: 50 })) {
        events.push(e)
        if (e.type === 'job:succeeded' && !cutWhileRunning) {
          // Mid-order: the connection drops, and the first try to reconnect is refused too.
          cutWhileRunning = true
          proxy.cut()
          setTimeout(() => proxy.restore(), 300)
        }
      }
      expect(cutWhileRunning).toBe(true)
      expect(proxy.passed).toBeGreaterThan(2)
      const seqs = logged(events).map(([seq]) => seq)
      expect(new Set(seqs).size).toBe(seqs.length)
      expect(logged(events)).toEqual(await stored(order.orderId))
      const last = events.at(-1)!
      expect(last.type === 'fulfilment' && last.fulfilment.state).toBe('succeeded')

      // Following again from a position gives exactly what came after it.
      const from = seqs[3]!
      const rest = await all(c.follow(order.orderId, { after: from }))
      expect(logged(rest)).toEqual((await stored(order.orderId)).filter(([s]) => s > from))
    } finally {
      await proxy.close()
    }
  }, 60_000)

  it('says why a job waits, lists jobs, and cancels a job and an order', async () => {
    await cluster.server()
    await cluster.worker('w1')
    const c = cluster.client()
    const order = await c.submitPacket({
      name: 'long',
      jobs: [
        { name: 'first', op: sh('sleep 30') },
        { name: 'second', op: sh('true'), after: ['first'] },
      ],
    })
    const [first, second] = await c.jobs(order.orderId)
    const wait = await c.jobWait(second!.id)
    expect(wait).toMatchObject({ kind: 'locks', waitingFor: [first!.id] })
    expect(wait!.text).toContain('first')

    const cancelled = await c.cancelJob(first!.id)
    expect(cancelled).toMatchObject({ id: first!.id, state: 'cancelled' })
    const final = await c.wait(order.orderId)
    expect(final.state).toBe('cancelled')
    expect((await c.jobs(order.orderId)).map((j) => [j.name, j.state])).toEqual([
      ['first', 'cancelled'],
      ['second', 'skipped'],
    ])

    const other = await c.submitPacket({ name: 'other', jobs: [{ name: 'x', op: sh('sleep 30') }] })
    const following = all(c.follow(other.orderId))
    expect((await c.cancelOrder(other.orderId)).state).toBe('cancelled')
    const events = await following
    expect(events.some((e) => e.type === 'order:cancelled')).toBe(true)
    const again = await refusal(c.cancelOrder(other.orderId).then(() => c.cancelJob(first!.id)))
    expect(again.code).toBe('ALREADY_FINAL')
  }, 60_000)

  it('throws errors with the catalogue’s codes', async () => {
    await cluster.server()
    const ana = cluster.client()
    const bob = cluster.client(BOB)
    const order = await ana.submitPacket({ name: 'p', jobs: [{ name: 'a', op: sh('true') }] })

    // Another owner's order is not found, as one that does not exist: for every call.
    for (const call of [
      () => bob.status(order.orderId),
      () => bob.cancelOrder(order.orderId),
      () => all(bob.follow(order.orderId)),
      () => bob.download(order.orderId, join(cluster.dir, 'bobs')),
    ]) {
      const e = await refusal(call())
      expect([e.code, e.status]).toEqual(['ORDER_NOT_FOUND', 404])
    }

    const invalid = await refusal(
      ana.submitPacket({ name: 'p', jobs: [{ name: 'a', op: { exec: 'not a list' } }] } as never),
    )
    expect(invalid).toBeInstanceOf(ValidationError)
    expect(invalid.code).toBe('VALIDATION_FAILED')
    expect((invalid as ValidationError).issues.map((i) => i.path)).toContain('jobs[0].op.exec')

    // Nothing listens there: every call, the stream too, says the scheduler is unavailable.
    const closed = await freePort()
    const nowhere = new LockstepClient({ url: `http://127.0.0.1:${closed}`, token: 'x' })
    for (const call of [
      () => nowhere.status(order.orderId),
      () => all(nowhere.follow(order.orderId, { retryMinMs: 1, maxRetries: 2 })),
    ]) {
      const e = await refusal(call())
      expect(e.code).toBe('UNAVAILABLE')
      expect(e.message).toContain(`cannot reach the scheduler at http://127.0.0.1:${closed}`)
      expect(e.message).toContain('ECONNREFUSED')
    }
  }, 60_000)
})
