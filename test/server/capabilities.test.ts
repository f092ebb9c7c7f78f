/**
 * Capabilities: the scheduler signs one per assignment input, for its product and its consumer,
 * with a key whose public half workers fetch; a holder accepts a genuine, unexpired capability
 * for the product asked for, and refuses a forged, expired or misdirected one with its code.
 */
import { generateKeyPairSync } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { FakeClock } from '../../src/core/clock.ts'
import { capabilityPayload, decodeCapability, encodeCapability } from '../../src/core/capability.ts'
import type { Assignment, HeartbeatReply } from '../../src/core/protocol.ts'
import { CapabilityVerifier } from '../../src/runner/capability-check.ts'
import { CapabilitySigner, DEFAULT_CAPABILITY_TTL_MS } from '../../src/service/capabilities.ts'
import { SchedulerService } from '../../src/service/service.ts'
import { startServer } from '../../src/server/server.ts'
import type { RunningServer } from '../../src/server/server.ts'
import { SqliteStore } from '../../src/store/sqlite-store.ts'
import { checkLeaks } from '../leaks.ts'

const opened = checkLeaks()

const input = (productId: string) => ({ jobId: productId, productId, name: 'in', holders: [] })
const assignment = (target: string, productIds: string[]) =>
  ({ target, inputs: productIds.map(input) }) as unknown as Assignment

describe('a capability', () => {
  const clock = new FakeClock(1_000_000)
  const signer = new CapabilitySigner(clock)
  const verifier = new CapabilityVerifier(signer.key)

  it('is attached to every input, for its product and the assignment’s target', () => {
    const [a] = signer.attach([assignment('w2', ['p1', 'p2'])])
    const granted = a!.inputs.map((i) => verifier.check(i.capability!, i.productId, clock.now()))
    expect(granted).toMatchObject([
      { ok: true, capability: { product: 'p1', consumer: 'w2' } },
      { ok: true, capability: { product: 'p2', consumer: 'w2' } },
    ])
  })

  it('leaves the assignment it was given without capabilities: the engine’s records hold none', () => {
    const given = assignment('w2', ['p1'])
    signer.attach([given])
    expect(given.inputs[0]!.capability).toBeUndefined()
  })

  it('lasts ten minutes by default, then is refused as expired', () => {
    const text = signer.sign('p1', 'w2')
    expect(decodeCapability(text)!.capability.exp).toBe(clock.now() + DEFAULT_CAPABILITY_TTL_MS)
    expect(verifier.check(text, 'p1', clock.now() + DEFAULT_CAPABILITY_TTL_MS - 1).ok).toBe(true)
    expect(verifier.check(text, 'p1', clock.now() + DEFAULT_CAPABILITY_TTL_MS)).toMatchObject({
      ok: false,
      status: 401,
      code: 'CAPABILITY_EXPIRED',
    })
  })

  it('lasts as long as it is configured to', () => {
    const short = new CapabilitySigner(clock, { ttlMs: 5000 })
    const text = short.sign('p1', 'w2')
    const check = new CapabilityVerifier(short.key)
    expect(check.check(text, 'p1', clock.now() + 4999).ok).toBe(true)
    expect(check.check(text, 'p1', clock.now() + 5000)).toMatchObject({
      code: 'CAPABILITY_EXPIRED',
    })
  })

  it('is refused for another product than its own, with 403', () => {
    expect(verifier.check(signer.sign('p1', 'w2'), 'p2', clock.now())).toMatchObject({
      ok: false,
      status: 403,
      code: 'CAPABILITY_WRONG_PRODUCT',
    })
  })

  const genuine = signer.sign('p1', 'w2')
  const [payload, signature] = genuine.split('.') as [string, string]
  const forger = new CapabilitySigner(clock)
  const otherKey = forger.sign('p1', 'w2')
  const [, forgedSignature] = otherKey.split('.') as [string, string]
  const claims = decodeCapability(genuine)!.capability
  it.each([
    [
      'another product, the signature kept',
      `${capabilityPayload({ ...claims, product: 'p9' })}.${signature}`,
      'p9',
    ],
    [
      'a later expiry, the signature kept',
      `${capabilityPayload({ ...claims, exp: claims.exp + 1 })}.${signature}`,
      'p1',
    ],
    ['another key’s signature under this key’s id', `${payload}.${forgedSignature}`, 'p1'],
    ['another key altogether', otherKey, 'p1'],
    ['no signature', `${payload}.`, 'p1'],
    [
      'a flipped signature byte',
      `${payload}.${signature.slice(0, -2)}${signature.at(-2) === 'A' ? 'B' : 'A'}${signature.slice(-1)}`,
      'p1',
    ],
    ['not base64url', `${payload}!.${signature}`, 'p1'],
    ['three parts', `${payload}.${signature}.x`, 'p1'],
    ['a payload of another shape', `${btoa('{"v":2}')}.${signature}`, 'p1'],
    ['nothing', '', 'p1'],
  ])('forged (%s) is refused as invalid, 401', (_, text, product) => {
    expect(verifier.check(text, product, clock.now())).toMatchObject({
      ok: false,
      status: 401,
      code: 'CAPABILITY_INVALID',
    })
  })

  it('is made only with an Ed25519 key', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 })
      .privateKey.export({ type: 'pkcs8', format: 'pem' })
      .toString()
    expect(() => new CapabilitySigner(clock, { privateKey: rsa })).toThrow(/Ed25519/)
  })

  it('is encoded as payload.signature', () => {
    expect(encodeCapability('a', 'b')).toBe('a.b')
  })
})

describe('capabilities through the API', () => {
  const W1 = 'w1-token-123'
  const W2 = 'w2-token-123'
  const ADMIN = 'admin-token-1'
  const tokens = [
    { role: 'admin' as const, name: 'ops', token: ADMIN },
    { role: 'worker' as const, name: 'w1', token: W1 },
    { role: 'worker' as const, name: 'w2', token: W2 },
  ]
  let dir: string
  let service: SchedulerService
  let server: RunningServer

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'lockstep-caps-'))
    service = opened.service(
      await SchedulerService.start({ store: new SqliteStore({ path: join(dir, 'db') }) }),
    )
    server = opened.server(await startServer({ service, port: 0, tokens }))
  })

  afterEach(async () => {
    await server.close()
    await service.close()
    rmSync(dir, { recursive: true, force: true })
  })

  const call = async <T>(token: string, method: string, path: string, body?: unknown) => {
    const res = await fetch(`${server.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    })
    return { status: res.status, body: (await res.json().catch(() => undefined)) as T }
  }

  it('a heartbeat’s assignment carries a capability for its input that the published key checks', async () => {
    for (const [id, token] of [
      ['w1', W1],
      ['w2', W2],
    ] as const) {
      expect(
        (await call(token, 'POST', '/v1/targets', { id, url: `http://127.0.0.1:1/${id}` })).status,
      ).toBe(201)
    }
    const packet = {
      name: 'pass',
      jobs: [
        { name: 'make', op: { builtin: 'noop' }, target: 'w1' },
        { name: 'read', op: { builtin: 'noop' }, after: ['make'], target: 'w2' },
      ],
    }
    expect((await call(ADMIN, 'POST', '/v1/orders', { packet })).status).toBe(201)
    const first = await call<HeartbeatReply>(W1, 'POST', '/v1/targets/w1/heartbeat', { free: 1 })
    const make = first.body.assignments[0]!
    expect(make.inputs).toEqual([])
    await call(W1, 'POST', '/v1/targets/w1/heartbeat', {
      results: [{ jobId: make.jobId, attempt: make.attempt, result: { ok: true } }],
      added: [make.productId],
    })
    const second = await call<HeartbeatReply>(W2, 'POST', '/v1/targets/w2/heartbeat', { free: 1 })
    const [read] = second.body.assignments
    expect(read!.inputs).toMatchObject([{ productId: make.productId, holders: ['w1'] }])
    expect(typeof read!.inputs[0]!.capability).toBe('string')

    // Any worker fetches the key; nobody without a token does.
    expect((await fetch(`${server.url}/v1/capabilities/key`)).status).toBe(401)
    const key = await call<{ kid: string; publicKey: string }>(W1, 'GET', '/v1/capabilities/key')
    expect(key.status).toBe(200)
    const verdict = new CapabilityVerifier(key.body).check(
      read!.inputs[0]!.capability!,
      make.productId,
      Date.now(),
    )
    expect(verdict).toMatchObject({
      ok: true,
      capability: { product: make.productId, consumer: 'w2' },
    })
    expect(service.capabilityKey).toEqual(key.body)
  })
})
