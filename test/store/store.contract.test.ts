/**
 * One contract, both backends: what the engine does, written through the journal, reads back
 * the same; migrations are idempotent, safe at once from two processes, and refuse a newer schema.
 */
import { spawn } from 'node:child_process'
import { afterEach, describe, expect, it } from 'vitest'
import { Engine, FakeClock, LockstepError } from '../../src/index.ts'
import type { EngineEvent } from '../../src/index.ts'
import { Journal } from '../../src/service/journal.ts'
import { openStore } from '../../src/store/open-store.ts'
import { migrations, schemaVersion } from '../../src/store/migrations.ts'
import type { Store } from '../../src/store/store.ts'
import { backends } from './backends.ts'
import type { Backend } from './backends.ts'

const op = { builtin: 'noop' }
const HASH = 'a'.repeat(64)

describe.each(backends)('store contract: %s', (_name, make) => {
  let backend: Backend
  const open: Store[] = []

  function store(): Store {
    const s = backend.open()
    open.push(s)
    return s
  }

  afterEach(async () => {
    for (const s of open.splice(0)) await s.close()
    await backend.destroy()
  })

  /** An engine whose every change is committed to `s` after each step. */
  function recorded(s: Store) {
    const clock = new FakeClock()
    const engine = new Engine({ clock, leaseMs: 10_000, cacheTimeoutMs: 10, depsTimeoutMs: 10 })
    const journal = new Journal()
    const events: EngineEvent[] = []
    engine.on((e) => {
      events.push(e)
      journal.add(e, engine)
    })
    const commit = () => s.commit(journal.take(engine))
    return { clock, engine, commit, events }
  }

  it('migrates once, and running it again changes nothing', async () => {
    backend = make('migrate')
    const s = store()
    expect(await s.migrate()).toBe(schemaVersion)
    expect(await s.migrate()).toBe(schemaVersion)
    const rows = await backend.query<{ version: number }>('SELECT version FROM lockstep_migrations')
    expect(rows.map((r) => Number(r.version))).toEqual(migrations.map((m) => m.version))
  })

  it('lets two processes migrate at once', async () => {
    backend = make('concurrent')
    const child = () =>
      new Promise<string>((resolve, reject) => {
        const p = spawn(
          process.execPath,
          [
            '--import',
            'tsx',
            '-e',
            `import { openStore } from './src/store/open-store.ts'
             const s = openStore(process.env.URL); console.log(await s.migrate()); await s.close()`,
          ],
          { env: { ...process.env, URL: backend.url }, stdio: ['ignore', 'pipe', 'inherit'] },
        )
        let out = ''
        p.stdout.on('data', (d: Buffer) => (out += d.toString()))
        p.on('error', reject)
        p.on('exit', (code) =>
          code === 0 ? resolve(out.trim()) : reject(new Error(`exit ${code}`)),
        )
      })
    expect(await Promise.all([child(), child(), child()])).toEqual(
      Array(3).fill(String(schemaVersion)),
    )
    const s = openStore(backend.url)
    open.push(s)
    expect(await s.migrate()).toBe(schemaVersion)
  })

  it('refuses a schema newer than the code', async () => {
    backend = make('too_new')
    await store().migrate()
    await backend.query(
      "INSERT INTO lockstep_migrations (version, name, applied_at) VALUES (999, 'future', 0)",
    )
    const err = await store()
      .migrate()
      .catch((e: unknown) => e)
    expect(err).toBeInstanceOf(LockstepError)
    expect((err as LockstepError).code).toBe('SCHEMA_TOO_NEW')
    expect((err as Error).message).toContain(
      `schema version 999, newer than this Lockstep's ${schemaVersion}`,
    )
  })

  it('reads back an order in flight as the engine left it', async () => {
    backend = make('roundtrip')
    const s = store()
    await s.migrate()
    const { engine, commit } = recorded(s)
    engine.registerTarget({ id: 'w1', slots: 4, labels: { zone: 'eu' }, projects: ['p'] })
    const order = engine.submitPacket(
      {
        name: 'build',
        resources: [{ key: 'gpu', value: 'one', unique: true }],
        jobs: [
          { name: 'a', op },
          { name: 'b', op: { exec: ['make'] }, after: ['a'], uses: ['gpu'], timeoutMs: 5000 },
          { name: 'c', op, after: ['b'] },
        ],
      },
      { priority: 80, owner: 'team' },
      'ana',
    )
    await commit()
    const [a] = engine.pick('w1', 4)
    engine.complete('w1', a!.jobId, 1, { ok: true })
    const [b] = engine.pick('w1', 4)
    await commit()

    const snap = await store().load()
    expect(snap.packets.map((p) => p.name)).toEqual(['build'])
    expect(snap.targets).toEqual([
      {
        target: {
          id: 'w1',
          kind: 'worker',
          availability: 4,
          labels: { zone: 'eu' },
          projects: ['p'],
        },
        live: true,
      },
    ])
    expect(snap.orders).toHaveLength(1)
    const stored = snap.orders[0]!
    expect(stored.stored.order).toEqual(engine.order(order.orderId))
    expect(stored.jobs).toEqual(engine.jobs(order.orderId))
    expect(stored.locks.map((l) => [l.jobId, l.nextId, l.released])).toEqual([
      [a!.jobId, b!.jobId, true],
      [b!.jobId, engine.jobs(order.orderId)[2]!.id, false],
    ])
    expect(snap.attempts).toEqual([...engine.attempts(a!.jobId), ...engine.attempts(b!.jobId)])
    expect(snap.products).toEqual([{ productId: a!.jobId, targetId: 'w1' }])
    expect(snap.holders).toEqual([{ key: 'gpu', holder: b!.jobId }])

    // A restored engine carries on from there.
    const next = new Engine({ clock: new FakeClock(), leaseMs: 10_000 })
    next.restore(snap)
    expect(next.fulfilment(order.orderId).counts).toMatchObject({
      succeeded: 1,
      running: 1,
      waiting: 1,
    })
    next.complete('w1', b!.jobId, 1, { ok: true })
    const [c] = next.pick('w1', 4)
    expect(c!.inputs).toEqual([
      { jobId: b!.jobId, productId: b!.jobId, name: 'b', holders: ['w1'] },
    ])
    next.stop()
  })

  it('keeps ended orders out of the snapshot but answers for them', async () => {
    backend = make('ended')
    const s = store()
    await s.migrate()
    const { engine, commit } = recorded(s)
    engine.registerTarget({ id: 'w1' })
    const order = engine.submitPacket(
      {
        name: 'p',
        jobs: [
          { name: 'a', op },
          { name: 'b', op },
        ],
      },
      {},
      'ana',
    )
    const [a] = engine.pick('w1', 1)
    engine.complete('w1', a!.jobId, 1, { ok: false, exitCode: 3, message: 'boom' })
    await commit()
    expect((await s.load()).orders).toEqual([])
    const summary = await s.order(order.orderId)
    expect(summary).toMatchObject({
      order: { id: order.orderId, state: 'failed' },
      reason: 'job a failed: exit-code 3: boom',
      total: 2,
      counts: { failed: 1, cancelled: 1 },
    })
    expect((await s.jobs(order.orderId)).map((j) => [j.name, j.state])).toEqual([
      ['a', 'failed'],
      ['b', 'cancelled'],
    ])
    expect(await s.attempts(a!.jobId)).toEqual(engine.attempts(a!.jobId))
    expect((await s.listOrders(10)).map((o) => o.order.id)).toEqual([order.orderId])
    expect(await s.order('00000000-0000-7000-8000-000000000000')).toBeUndefined()
  })

  it('lists the newest orders first, each counted as order() counts it', async () => {
    backend = make('list')
    const s = store()
    await s.migrate()
    const { engine, commit } = recorded(s)
    engine.registerTarget({ id: 'w1', slots: 4 })
    // Chains of 2, 3, 4 and 5 jobs, so that every order has its own total.
    const chain = (name: string, n: number) => ({
      name,
      jobs: Array.from({ length: n }, (_, i) => ({
        name: `j${i}`,
        op,
        ...(i === 0 ? {} : { after: [`j${i - 1}`] }),
      })),
    })
    const ids = [2, 3, 4, 5].map((n) => engine.submitPacket(chain(`p${n}`, n), {}, 'ana').orderId)
    // Move them apart: the first has a job done, the second one running, the third is cancelled.
    const [a, b] = engine.pick('w1', 2)
    expect([a!.orderId, b!.orderId]).toEqual([ids[0], ids[1]])
    engine.complete('w1', a!.jobId, 1, { ok: true })
    engine.cancelOrder(ids[2]!)
    await commit()

    const listed = await s.listOrders(3)
    expect(listed.map((o) => o.order.id)).toEqual([ids[3], ids[2], ids[1]])
    for (const o of listed) {
      expect(o).toEqual(await s.order(o.order.id))
      expect(o.order).toEqual(engine.order(o.order.id))
      const live = engine.fulfilment(o.order.id)
      expect([o.counts, o.total]).toEqual([live.counts, live.total])
    }
    expect(listed.map((o) => [o.order.state, o.total])).toEqual([
      ['running', 5],
      ['cancelled', 4],
      ['running', 3],
    ])
    expect(listed[2]!.counts).toMatchObject({ running: 1, waiting: 2 })
    const all = await s.listOrders(10)
    expect(all.map((o) => o.order.id)).toEqual([...ids].reverse())
    expect(all[3]!.counts).toMatchObject({ succeeded: 1, ready: 1 })
    engine.stop()
  })

  it('stores ids as 16 bytes and logs every event in order', async () => {
    backend = make('events')
    const s = store()
    await s.migrate()
    const { engine, commit, events } = recorded(s)
    engine.registerTarget({ id: 'w1' })
    const order = engine.submitPacket({ name: 'p', jobs: [{ name: 'a', op }] }, {}, 'ana')
    const [a] = engine.pick('w1', 1)
    engine.complete('w1', a!.jobId, 1, { ok: true })
    await commit()
    const lengths = await backend.query<{ n: number }>(
      `SELECT ${backend.name === 'sqlite' ? 'length' : 'octet_length'}(id) AS n FROM jobs`,
    )
    expect(lengths.map((r) => Number(r.n))).toEqual([16])
    const logged = await s.events(0, 100)
    expect(logged.map((e) => e.type)).toEqual(events.map((e) => e.type))
    expect(logged.every((e, i) => i === 0 || e.seq > logged[i - 1]!.seq)).toBe(true)
    const started = logged.find((e) => e.type === 'attempt:started')!
    expect(started).toMatchObject({ orderId: order.orderId, jobId: a!.jobId })
    expect(JSON.parse(started.body)).toEqual({ attempt: 1, target: 'w1' })
    expect(await s.events(logged[2]!.seq, 2)).toEqual(logged.slice(3, 5))
    // One order's events, after a position: the target's registration is no order's.
    const ofOrder = logged.filter((e) => e.orderId === order.orderId)
    expect(ofOrder.map((e) => e.type)).toContain('order:succeeded')
    expect(ofOrder.map((e) => e.type)).not.toContain('target:registered')
    expect(await s.events(0, 100, order.orderId)).toEqual(ofOrder)
    expect(await s.events(ofOrder[1]!.seq, 2, order.orderId)).toEqual(ofOrder.slice(2, 4))
    expect((await s.load()).lastEventSeq).toBe(logged.at(-1)!.seq)
  })

  it("keeps a product's hash with its attempt and its holder, for a restart", async () => {
    backend = make('hashes')
    const s = store()
    await s.migrate()
    const jobs = [
      { name: 'lib', op, cache: 'lib@1' },
      { name: 'use', op, after: ['lib'] },
    ]
    const { engine, commit } = recorded(s)
    engine.registerTarget({ id: 'w1' })
    const order = engine.submitPacket({ name: 'p', jobs }, {}, 'ana')
    const [lib] = engine.pick('w1', 1)
    engine.complete('w1', lib!.jobId, 1, { ok: true, productHash: HASH })
    await commit()

    const snap = await store().load()
    expect(snap.attempts).toMatchObject([{ jobId: lib!.jobId, product: 'w1', productHash: HASH }])
    expect(await s.attempts(lib!.jobId)).toEqual(engine.attempts(lib!.jobId))
    expect(snap.products).toEqual([{ productId: 'cache:lib@1', targetId: 'w1', hash: HASH }])

    const next = new Engine({ clock: new FakeClock(), leaseMs: 10_000 })
    next.restore(snap)
    const [use] = next.pick('w1', 1)
    expect(use!.inputs).toEqual([
      { jobId: lib!.jobId, productId: 'cache:lib@1', name: 'lib', holders: ['w1'], hash: HASH },
    ])
    // The key is satisfied after the restart too: its product's hash is known.
    const again = next.submitPacket(
      { name: 'q', jobs: [{ name: 'lib', op, cache: 'lib@1' }] },
      {},
      'bob',
    )
    expect(next.fulfilment(again.orderId).state).toBe('succeeded')
    expect(next.fulfilment(order.orderId).state).toBe('running')
    next.stop()
    engine.stop()
  })

  it("keeps an attempt's artefacts, failed or succeeded, and none as none", async () => {
    backend = make('artefacts')
    const s = store()
    await s.migrate()
    const { engine, commit } = recorded(s)
    engine.registerTarget({ id: 'w1', slots: 3 })
    const order = engine.submitPacket(
      {
        name: 'p',
        jobs: [
          { name: 'ok', op },
          { name: 'bad', op, failure: { attempts: 2, backoffMs: 1000 } },
          { name: 'bare', op },
        ],
      },
      {},
      'ana',
    )
    const [ok, bad, bare] = engine.pick('w1', 3)
    const report = ['https://example.com/report.html', 's3://bucket/model.pt']
    engine.complete('w1', ok!.jobId, 1, { ok: true, artefacts: report, productHash: HASH })
    engine.complete('w1', bad!.jobId, 1, {
      ok: false,
      exitCode: 3,
      artefacts: ['https://logs.example.com/core'],
    })
    engine.complete('w1', bare!.jobId, 1, { ok: true, artefacts: [] })
    await commit()

    expect((await s.attempts(ok!.jobId)).map((a) => a.artefacts)).toEqual([report])
    expect((await s.attempts(bad!.jobId)).map((a) => [a.state, a.artefacts])).toEqual([
      ['failed', ['https://logs.example.com/core']],
    ])
    expect(await s.attempts(bare!.jobId)).toEqual(engine.attempts(bare!.jobId))
    expect((await s.attempts(bare!.jobId))[0]).not.toHaveProperty('artefacts')
    // In flight (the bad job backs off before its retry), a restart reads them back too.
    const snap = await store().load()
    expect(snap.attempts.find((a) => a.jobId === ok!.jobId)!.artefacts).toEqual(report)
    expect(engine.fulfilment(order.orderId).state).toBe('running')
    engine.stop()
  })

  it('forgets the cache of a lost worker', async () => {
    backend = make('cache')
    const s = store()
    await s.migrate()
    const { engine, commit, clock } = recorded(s)
    // Products are believed only where they were made or fetched (a planted `cached` was how
    // this test once filled caches): w1 makes x, y and z; w2 fetches x as an input.
    engine.registerTarget({ id: 'w1', slots: 3 })
    engine.registerTarget({ id: 'w2' })
    const order = engine.submitPacket(
      {
        name: 'p',
        jobs: [
          { name: 'x', op, target: 'w1' },
          { name: 'y', op, target: 'w1' },
          { name: 'z', op, target: 'w1' },
          { name: 'use', op, after: ['x'], target: 'w2' },
        ],
      },
      {},
      'ana',
    )
    for (const a of engine.pick('w1', 3)) {
      engine.complete('w1', a.jobId, 1, { ok: true, productHash: HASH })
    }
    const [x, y, z] = engine.jobs(order.orderId).map((j) => j.id)
    const [use] = engine.pick('w2', 1)
    expect(use!.inputs).toMatchObject([{ productId: x, holders: ['w1'], hash: HASH }])
    engine.reportCache('w2', [x!])
    engine.reportCache('w1', [], [y!])
    await commit()
    const name = { [x!]: 'x', [y!]: 'y', [z!]: 'z' }
    const sorted = async () =>
      (await s.load()).products.map((p) => `${name[p.productId]}@${p.targetId}`).sort()
    expect(await sorted()).toEqual(['x@w1', 'x@w2', 'z@w1'])
    engine.heartbeat('w2', [{ jobId: use!.jobId, attempt: 1 }])
    clock.advance(6000)
    engine.heartbeat('w2', [{ jobId: use!.jobId, attempt: 1 }])
    clock.advance(6000)
    await commit()
    expect(await sorted()).toEqual(['x@w2'])
    expect((await s.load()).targets.map((t) => [t.target.id, t.live])).toEqual([
      ['w1', false],
      ['w2', true],
    ])
    engine.stop()
  })

  it("keeps the kinds a target runs and an artifact job's project, for a restart", async () => {
    backend = make('trust')
    const s = store()
    await s.migrate()
    const { engine, commit } = recorded(s)
    engine.registerTarget({ id: 'site', projects: ['clinics'], runs: ['builtin'] })
    engine.registerTarget({ id: 'farm' })
    const order = engine.submitArtifact(
      { project: 'clinics', steps: [{ kind: 'parallel', op }] },
      {},
      'ana',
    )
    await commit()
    const snap = await s.load()
    expect(snap.targets.map((t) => [t.target.id, t.target.runs])).toEqual([
      ['farm', undefined],
      ['site', ['builtin']],
    ])
    const jobs = snap.orders.find((o) => o.stored.order.id === order.orderId)!.jobs
    expect(jobs.map((j) => j.project)).toEqual(['clinics'])
    engine.stop()
  })

  it("keeps the sites an artifact's order was bound over, and none for a packet", async () => {
    backend = make('sites')
    const s = store()
    await s.migrate()
    const { clock, engine, commit } = recorded(s)
    for (const id of ['a', 'b', 'c']) engine.registerTarget({ id, projects: ['clinics'] })
    clock.advance(6_000)
    engine.heartbeat('a')
    engine.heartbeat('b')
    clock.advance(6_000)
    const order = engine.submitArtifact(
      { project: 'clinics', steps: [{ kind: 'parallel', op }] },
      { minSites: 2 },
      'ana',
    )
    const packet = engine.submitPacket({ name: 'p', jobs: [{ name: 'j', op }] }, {}, 'ana')
    await commit()
    const sites = { bound: ['a', 'b'], offline: ['c'], minSites: 2 }
    expect((await s.order(order.orderId))?.order.sites).toEqual(sites)
    const snap = await s.load()
    const stored = (id: string) => snap.orders.find((o) => o.stored.order.id === id)!.stored.order
    expect(stored(order.orderId).sites).toEqual(sites)
    expect(stored(packet.orderId).sites).toBeUndefined()
    engine.stop()
  })
})
