/**
 * Per-worker tokens, end to end: the real `lockstep server` and two `lockstep worker`s, each with
 * its own token (`worker:w1:…`, `worker:w2:…`). w2's job reads w1's product straight from w1,
 * showing the capability the scheduler signed for it; w1 refuses a forged, expired or
 * misdirected capability, and w2's token. The initiator, inside the scheduler, takes products from
 * workers by capability too.
 *
 * The relay is kept out on purpose: the scheduler relays with the first worker token it is given,
 * here w2's, which w1 refuses. A product that reached w2 came from w1 directly.
 */
import { readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { FakeClock } from '../../src/core/clock.ts'
import { capabilityPayload, decodeCapability } from '../../src/core/capability.ts'
import { unpack } from '../../src/runner/archive.ts'
import { CapabilitySigner } from '../../src/service/capabilities.ts'
import { checkLeaks } from '../leaks.ts'
import { sqliteBackend } from '../store/backends.ts'
import type { Backend } from '../store/backends.ts'
import { Cluster, WORKBENCH, makeThenRead, sh } from './cluster.ts'
import type { Proc } from './cluster.ts'

const opened = checkLeaks()

const W1 = 'w1-own-token-123'
const W2 = 'w2-own-token-123'

let backend: Backend
let cluster: Cluster
let scheduler: Proc
let w1: Proc & { url: string }
let w2: Proc & { url: string }

beforeEach(async () => {
  backend = sqliteBackend()
  // w2's token first: the relay fetches with it, and w1 refuses it.
  cluster = new Cluster({
    databaseUrl: backend.url,
    opened,
    tokens: `admin:ana:${WORKBENCH},worker:w2:${W2},worker:w1:${W1}`,
  })
  scheduler = await cluster.server()
  w1 = await cluster.worker('w1', ['--token', W1])
  w2 = await cluster.worker('w2', ['--token', W2])
})

afterEach(async () => {
  await cluster.stopAll()
  await backend.destroy()
})

/** Runs `makeThenRead` to the end; returns the product id of `make`. */
async function passed(): Promise<string> {
  const c = cluster.client()
  const order = await c.submit({ packet: makeThenRead })
  const f = await cluster.finished(order.orderId)
  const [make, read] = await c.jobs(order.orderId)
  expect(f.state, JSON.stringify((await c.job(read!.id)).attempts)).toBe('succeeded')
  // What w2's job printed, fetched from w2 with w2's own token.
  const res = await fetch(`${w2.url}/products/${encodeURIComponent(read!.id)}`, {
    headers: { authorization: `Bearer ${W2}` },
  })
  expect(res.status).toBe(200)
  const dir = join(cluster.dir, 'downloads', read!.id)
  await unpack(Readable.fromWeb(res.body as never), dir)
  expect(readFileSync(join(dir, 'stdout'), 'utf8')).toBe('hello')
  return make!.id
}

/** A worker's answer to a product request, with its status and error code. */
async function ask(url: string, productId: string, authorization?: string) {
  const res = await fetch(`${url}/products/${encodeURIComponent(productId)}`, {
    headers: authorization === undefined ? {} : { authorization },
  })
  const text = await res.text()
  const code = res.ok ? undefined : (JSON.parse(text) as { error: { code: string } }).error.code
  return { status: res.status, code }
}

describe('workers with their own tokens', () => {
  it('pass a product peer to peer with a capability, not through the relay', async () => {
    const product = await passed()
    // w1 served it to w2, and says so.
    const served = w1
      .stderr()
      .split('\n')
      .filter((l) => l.includes('serving a product to a peer'))
      .map((l) => JSON.parse(l) as { product: string; consumer: string })
    expect(served).toEqual([expect.objectContaining({ product, consumer: 'w2' })])
    expect(w1.stderr()).not.toContain('refused a capability')
    // The relay could not have: it fetches with w2's token (the first worker token), which w1
    // refuses. (The relay would now succeed from w2, which holds the product since.)
    expect(await ask(w1.url, product, `Bearer ${W2}`)).toEqual({
      status: 401,
      code: 'UNAUTHORIZED',
    })
  })

  it('pass products to and from the initiator inside the scheduler', async () => {
    // The initiator fetches w1's product with a capability (its own token is w2's, which w1
    // refuses); w2 fetches the initiator's product from the scheduler with its own token.
    const c = cluster.client()
    const order = await c.submit({
      packet: {
        name: 'via-initiator',
        jobs: [
          makeThenRead.jobs[0]!,
          { name: 'gather', op: { builtin: 'noop' }, after: ['make'], target: 'initiator' },
          {
            name: 'read',
            op: sh('cat "$LOCKSTEP_INPUTS/make/greeting"; ls "$LOCKSTEP_INPUTS"'),
            after: ['gather', 'make'],
            target: 'w2',
          },
        ],
      },
    })
    const f = await cluster.finished(order.orderId)
    const jobs = await c.jobs(order.orderId)
    const attempts = await Promise.all(jobs.map(async (j) => (await c.job(j.id)).attempts))
    expect(f.state, JSON.stringify(attempts)).toBe('succeeded')
    const gather = jobs.find((j) => j.name === 'gather')!
    const make = jobs.find((j) => j.name === 'make')!
    const holders = (await c.products(order.orderId)).find((p) => p.jobId === make.id)!.holders
    expect(holders.map((h) => h.target)).toContain('initiator')
    expect((await c.job(gather.id)).attempts.map((a) => a.target)).toEqual(['initiator'])
  })

  it('take up the new key of a scheduler restarted without its key file', async () => {
    await passed()
    scheduler.child.kill('SIGKILL')
    await scheduler.exited
    rmSync(join(cluster.dir, 'scheduler', 'capability-key.pem'))
    await cluster.server()
    // w2's capability names a key w1 has not seen: w1 fetches it and serves the product.
    const product = await passed()
    expect(w1.stderr()).toContain(`"product":"${product}","consumer":"w2"`)
    expect(w1.stderr()).not.toContain('refused a capability')
  })

  it('refuse a forged, expired or misdirected capability, each with its code', async () => {
    const product = await passed()
    const key = readFileSync(join(cluster.dir, 'scheduler', 'capability-key.pem'), 'utf8')
    const now = new FakeClock(Date.now())
    const scheduler = new CapabilitySigner(now, { privateKey: key })
    const genuine = scheduler.sign(product, 'w2')
    const [, signature] = genuine.split('.') as [string, string]
    const claims = decodeCapability(genuine)!.capability
    const stale = new CapabilitySigner(new FakeClock(Date.now() - 11 * 60_000), {
      privateKey: key,
    })
    const forger = new CapabilitySigner(now)
    const cases: [string, string | undefined, number, string | undefined][] = [
      ['the scheduler’s, for this product', `Capability ${genuine}`, 200, undefined],
      ['none', undefined, 401, 'UNAUTHORIZED'],
      [
        'signed eleven minutes ago',
        `Capability ${stale.sign(product, 'w2')}`,
        401,
        'CAPABILITY_EXPIRED',
      ],
      [
        'for another product',
        `Capability ${scheduler.sign('other', 'w2')}`,
        403,
        'CAPABILITY_WRONG_PRODUCT',
      ],
      [
        'signed by another key',
        `Capability ${forger.sign(product, 'w2')}`,
        401,
        'CAPABILITY_INVALID',
      ],
      [
        'a later expiry under the genuine signature',
        `Capability ${capabilityPayload({ ...claims, exp: claims.exp + 3_600_000 })}.${signature}`,
        401,
        'CAPABILITY_INVALID',
      ],
      ['garbage', 'Capability not-a-capability', 401, 'CAPABILITY_INVALID'],
    ]
    const answers = []
    for (const [, authorization] of cases) answers.push(await ask(w1.url, product, authorization))
    expect(answers).toEqual(cases.map(([, , status, code]) => ({ status, code })))
  })
})
