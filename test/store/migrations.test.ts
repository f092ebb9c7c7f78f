/**
 * A store made by an older Lockstep, on both backends: the newest migrations run over it at
 * start, and what it held reads back as it was, with what the new columns say of old rows.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { migrations, migrationsTable, schemaVersion } from '../../src/store/migrations.ts'
import type { Store } from '../../src/store/store.ts'
import { backends } from './backends.ts'
import type { Backend } from './backends.ts'

const ORDER = '01900000-0000-7000-8000-00000000000a'
const PACKET = '01900000-0000-7000-8000-00000000000b'
const JOB = '01900000-0000-7000-8000-00000000000c'
const HASH = 'a'.repeat(64)

describe.each(backends)('migrations over an older store: %s', (_name, make) => {
  let backend: Backend
  const open: Store[] = []

  afterEach(async () => {
    for (const s of open.splice(0)) await s.close()
    await backend.destroy()
  })

  /** The schema and rows Lockstep left at `version`, written as that version wrote them. */
  async function olderStore(version: number, rows: string): Promise<void> {
    const dialect = backend.name
    const older = migrations.filter((m) => m.version <= version)
    await backend.script(
      [
        migrationsTable,
        ...older.map((m) => m.sql(dialect)),
        ...older.map(
          (m) =>
            `INSERT INTO lockstep_migrations (version, name, applied_at) VALUES (${m.version}, 'v${m.version}', 0)`,
        ),
        rows,
      ].join(';\n'),
    )
  }

  /** A 16-byte id as a literal of the backend's dialect. */
  const bin = (id: string) => {
    const hex = id.replace(/-/g, '')
    return backend.name === 'sqlite' ? `X'${hex}'` : `'\\x${hex}'::bytea`
  }

  it('migration 5: attempts stored before artefacts read back without any, and keep their start', async () => {
    backend = make('migrate_v4')
    await olderStore(
      4,
      `INSERT INTO orders (id, source_kind, source_id, priority, owner, creator, state, created_at, iterations)
         VALUES (${bin(ORDER)}, 'packet', ${bin(PACKET)}, 50, 'ana', 'ana', 'succeeded', 1000, 0);
       INSERT INTO jobs (id, order_id, idx, name, spec, state, attempt)
         VALUES (${bin(JOB)}, ${bin(ORDER)}, 0, 'a', 1, 'succeeded', 2);
       INSERT INTO target_fulfilments
         (job_id, attempt, target, state, transitions, reason, exit_code, message, product, product_hash)
         VALUES
         (${bin(JOB)}, 1, 'w1', 'failed',
          '[{"state":"running","at":1000},{"state":"failed","at":1500}]',
          'exit-code', 2, NULL, NULL, NULL),
         (${bin(JOB)}, 2, 'w1', 'succeeded',
          '[{"state":"running","at":2000},{"state":"succeeded","at":2600}]',
          NULL, NULL, NULL, 'w1', '${HASH}')`,
    )
    const s = backend.open()
    open.push(s)
    expect(await s.migrate()).toBe(schemaVersion)

    expect(await s.attempts(JOB)).toEqual([
      {
        jobId: JOB,
        orderId: ORDER,
        attempt: 1,
        target: 'w1',
        state: 'failed',
        transitions: [
          { state: 'running', at: 1000 },
          { state: 'failed', at: 1500 },
        ],
        reason: 'exit-code',
        exitCode: 2,
      },
      {
        jobId: JOB,
        orderId: ORDER,
        attempt: 2,
        target: 'w1',
        state: 'succeeded',
        transitions: [
          { state: 'running', at: 2000 },
          { state: 'succeeded', at: 2600 },
        ],
        product: 'w1',
        productHash: HASH,
      },
    ])
    const started = await backend.query<{ attempt: number; started_at: number | string }>(
      'SELECT attempt, started_at FROM target_fulfilments ORDER BY attempt',
    )
    expect(started.map((r) => Number(r.started_at))).toEqual([1000, 2000])
    // So the old rows are found by their target, newest first, as the new ones are.
    const onTarget = async (which: Parameters<Store['attemptsOnTarget']>[1]) =>
      (await s.attemptsOnTarget('w1', which)).map((a) => a.attempt)
    expect(await onTarget({ limit: 10 })).toEqual([2, 1])
    expect(await onTarget({ limit: 1 })).toEqual([2])
    expect(await onTarget({ limit: 10, state: 'failed' })).toEqual([1])
    expect(await onTarget({ limit: 10, owner: 'ana' })).toEqual([2, 1])
    expect(await onTarget({ limit: 10, owner: 'bob' })).toEqual([])
  })

  it('migration 8: older orders take the name of their packet or artifact, and are found by it', async () => {
    backend = make('migrate_v7')
    const ARTIFACT = '01900000-0000-7000-8000-00000000000d'
    const ORDER2 = '01900000-0000-7000-8000-00000000000e'
    await olderStore(
      7,
      `INSERT INTO packets (id, name, body, created_at, owner)
         VALUES (${bin(PACKET)}, 'nightly', '{}', 900, 'ana');
       INSERT INTO artifacts (id, project, body, created_at)
         VALUES (${bin(ARTIFACT)}, 'clinics', '{}', 900);
       INSERT INTO orders (id, source_kind, source_id, priority, owner, creator, state, created_at, iterations)
         VALUES (${bin(ORDER)}, 'packet', ${bin(PACKET)}, 50, 'ana', 'ana', 'succeeded', 1000, 0),
                (${bin(ORDER2)}, 'artifact', ${bin(ARTIFACT)}, 70, 'ana', 'ana', 'failed', 1001, 0)`,
    )
    const s = backend.open()
    open.push(s)
    expect(await s.migrate()).toBe(schemaVersion)
    expect((await s.order(ORDER))?.order.source).toEqual({
      kind: 'packet',
      packetId: PACKET,
      name: 'nightly',
    })
    const page = await s.findOrders({ limit: 10, text: 'CLINIC' })
    expect(page.orders.map((o) => o.order.source)).toEqual([
      { kind: 'artifact', artifactId: ARTIFACT, name: 'clinics' },
    ])
    expect(
      (await s.findOrders({ limit: 10, sort: 'priority' })).orders.map((o) => o.order.id),
    ).toEqual([ORDER2, ORDER])
  })
})
