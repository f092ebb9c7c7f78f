/**
 * The chaos test: real scheduler and worker processes run several orders while workers and the
 * scheduler are killed with SIGKILL at seeded random moments (LOCKSTEP_TEST_SEED replays a run)
 * and started again, on SQLite and on PostgreSQL, whose server (a private one) is restarted
 * once mid-run. At the end every order has ended, no job is recorded as succeeded twice, and
 * every acknowledged submission is in the store with all its jobs. It prints its counts.
 */
import { join } from 'node:path'
import Database from 'better-sqlite3'
import pg from 'pg'
import { afterEach, describe, expect, it } from 'vitest'
import { checkLeaks } from '../leaks.ts'
import { seeded } from '../seed.ts'
import { Cluster, sh } from './cluster.ts'
import type { Proc } from './cluster.ts'
import { privatePostgres } from './private-postgres.ts'
import type { PrivatePostgres } from './private-postgres.ts'

const opened = checkLeaks()
const WORKERS = ['w1', 'w2', 'w3']
/** How long the killing goes on. */
const CHAOS_MS = 15_000
/** The fewest kills of a run. */
const MIN_KILLS = 5
/** Orders submitted over that time. */
const ORDERS = 12
const JOBS = 10
const SCHEMA = 'chaos'

/** One job first, eight after it in parallel, one after them all. */
const packet = (n: number) => ({
  name: `chaos-${n}`,
  failure: { attempts: 50, backoffMs: 100, maxBackoffMs: 1000 },
  jobs: [
    { name: 'first', op: sh('sleep 0.2') },
    ...Array.from({ length: JOBS - 2 }, (_, i) => ({
      name: `part-${i}`,
      op: sh('sleep 0.3; echo part > "$LOCKSTEP_OUT/part"'),
      after: ['first'],
    })),
    {
      name: 'last',
      op: sh('sleep 0.1'),
      after: Array.from({ length: JOBS - 2 }, (_, i) => `part-${i}`),
    },
  ],
})

let cluster: Cluster | undefined
let postgres: PrivatePostgres | undefined

afterEach(async () => {
  await cluster?.stopAll()
  postgres?.destroy()
  cluster = undefined
  postgres = undefined
})

/** Runs SQL on the store the scheduler used, with the scheduler stopped. */
type Query = <T>(sql: string) => Promise<T[]>

describe('chaos', () => {
  it.each(['sqlite', 'postgres'] as const)(
    'on %s: SIGKILLed workers and scheduler, a restarted database, and nothing lost or doubled',
    async (backend) => {
      const random = seeded(`chaos (${backend})`)
      let databaseUrl: string
      let query: Query
      if (backend === 'postgres') {
        const pgServer = (postgres = await privatePostgres())
        databaseUrl = `${pgServer.url}?schema=${SCHEMA}`
        query = async <T>(sql: string) => {
          const client = new pg.Client({
            connectionString: pgServer.url,
            options: `-c search_path=${SCHEMA}`,
          })
          await client.connect()
          try {
            return (await client.query(sql)).rows as T[]
          } finally {
            await client.end()
          }
        }
      } else {
        databaseUrl = ''
        query = <T>(sql: string) => {
          const db = new Database(join(c.dir, 'scheduler', 'lockstep.db'), { readonly: true })
          try {
            return Promise.resolve(db.prepare(sql).all() as T[])
          } finally {
            db.close()
          }
        }
      }
      const c = (cluster = new Cluster({ databaseUrl, opened }))
      const serverFlags = ['--lease-ms', '2000']
      let server: Proc = await c.server(serverFlags)
      const workers = new Map<string, Proc>()
      for (const id of WORKERS) workers.set(id, await c.worker(id, ['--slots', '2']))

      const counts = { workerKills: 0, schedulerKills: 0, databaseRestarts: 0, refused: 0 }
      const acked = new Map<string, number>()
      const started = Date.now()

      // Submissions, spread over the chaos, each retried until the scheduler acknowledges it.
      const submitting = (async () => {
        for (let n = 0; n < ORDERS; n++) {
          await new Promise((r) => setTimeout(r, CHAOS_MS / ORDERS))
          for (;;) {
            try {
              const order = await c.client().submit({ packet: packet(n) })
              acked.set(order.orderId, order.total)
              break
            } catch {
              counts.refused++
              await new Promise((r) => setTimeout(r, 200))
            }
          }
        }
      })()

      // The chaos: one action at a time, at seeded moments.
      const restartDatabaseAt = started + random.int(CHAOS_MS / 4, (CHAOS_MS * 3) / 4)
      // At least MIN_KILLS, however slowly a busy machine restarts the processes.
      const kills = () => counts.workerKills + counts.schedulerKills
      while (Date.now() - started < CHAOS_MS || kills() < MIN_KILLS) {
        await new Promise((r) => setTimeout(r, random.int(300, 1500)))
        if (
          postgres !== undefined &&
          counts.databaseRestarts === 0 &&
          Date.now() > restartDatabaseAt
        ) {
          postgres.restart()
          counts.databaseRestarts++
          random.log(`restarted PostgreSQL at ${Date.now() - started} ms`)
          continue
        }
        if (random.int(0, 3) === 0) {
          server.child.kill('SIGKILL')
          await server.exited
          counts.schedulerKills++
          random.log(`killed the scheduler at ${Date.now() - started} ms`)
          server = await c.server(serverFlags)
        } else {
          const id = WORKERS[random.int(0, WORKERS.length - 1)]!
          const worker = workers.get(id)!
          worker.child.kill('SIGKILL')
          await worker.exited
          counts.workerKills++
          random.log(`killed ${id} at ${Date.now() - started} ms`)
          workers.set(id, await c.worker(id, ['--slots', '2']))
        }
      }
      await submitting
      // A scheduler that stopped by itself (not killed) would be a failure to ride out a fault.
      expect(server.child.exitCode, server.stderr().slice(-2000)).toBeNull()
      for (const orderId of acked.keys()) {
        const { state } = await c.finished(orderId, 90_000)
        const failed = (await c.client().jobs(orderId)).filter((j) => j.state !== 'succeeded')
        const why = failed.map((j) => `${j.name} ${j.state} ${j.reason ?? ''}`).join('; ')
        expect(state, `order ${orderId}: ${why}`).toBe('succeeded')
      }
      for (const proc of [server, ...workers.values()]) {
        proc.child.kill('SIGTERM')
        await proc.exited
      }

      const hex = backend === 'sqlite' ? 'lower(hex(id))' : "encode(id, 'hex')"
      const orders = await query<{ id: string; state: string; jobs: number | string }>(
        `SELECT ${hex} AS id, state, (SELECT count(*) FROM jobs j WHERE j.order_id = o.id) AS jobs FROM orders o`,
      )
      const stored = new Map(orders.map((o) => [o.id, o]))
      for (const [id, jobs] of acked) {
        const o = stored.get(id.replace(/-/g, ''))
        expect(o, `acknowledged order ${id}`).toBeDefined()
        expect(Number(o!.jobs)).toBe(jobs)
      }
      // Submissions the scheduler stored but could not acknowledge before a kill end too.
      expect(orders.filter((o) => o.state === 'running')).toEqual([])
      expect(
        await query(
          "SELECT job_id FROM target_fulfilments WHERE state = 'succeeded' GROUP BY job_id HAVING count(*) > 1",
        ),
      ).toEqual([])
      expect(
        await query(
          "SELECT job_id FROM events WHERE type = 'job:succeeded' GROUP BY job_id HAVING count(*) > 1",
        ),
      ).toEqual([])
      const jobs = await query<{ state: string; n: number | string }>(
        'SELECT state, count(*) AS n FROM jobs GROUP BY state ORDER BY state',
      )
      const attempts = await query<{ n: number | string }>(
        'SELECT count(*) AS n FROM target_fulfilments',
      )
      random.log(
        `${counts.workerKills} worker kills, ${counts.schedulerKills} scheduler kills, ${counts.databaseRestarts} database restarts; ` +
          `${acked.size} orders acknowledged (${orders.length} stored, ${counts.refused} submissions refused while down); ` +
          `jobs ${jobs.map((j) => `${j.state} ${Number(j.n)}`).join(', ')}; ${Number(attempts[0]!.n)} attempts`,
      )
    },
    180_000,
  )
})
