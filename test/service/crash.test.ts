/**
 * The crash test: a scheduler with thousands of jobs in flight is killed with SIGKILL at random
 * moments and started again on the same store, several times. At the end every order is final,
 * no acknowledged order or job is lost, no job succeeded twice, and the locks table agrees with
 * the job states.
 *
 * The moments are seeded (LOCKSTEP_TEST_SEED replays a run; the seed is logged) and each is an
 * event, not a delay: the child prints a line for each order it acknowledges and for every
 * PROGRESS successes it has stored, and is killed once it has printed a number of those drawn for
 * the life (0: as soon as it has recovered).
 */
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { afterEach, describe, expect, it } from 'vitest'
import { checkLeaks } from '../leaks.ts'
import { seeded } from '../seed.ts'
import { backends } from '../store/backends.ts'
import type { Backend } from '../store/backends.ts'

const ORDERS = 40
const JOBS = 100
const KILLS = 5
/** The child reports every this many stored successes. */
const PROGRESS = 25

const opened = checkLeaks()

interface Life {
  child: ChildProcess
  lines: string[]
  /** Resolves with the exit code, or the signal that ended it. */
  exited: Promise<number | string>
  /** Resolves once the child printed `line`. */
  waitFor(line: string): Promise<void>
  /** Resolves once `done(lines)` holds; rejects if the child exits first. */
  until(done: (lines: string[]) => boolean): Promise<void>
}

function live(backend: Backend, seed: number): Life {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/service/crash-child.ts'], {
    env: {
      ...process.env,
      STORE_URL: backend.url,
      ORDERS: String(ORDERS),
      JOBS: String(JOBS),
      SEED: String(seed),
      PROGRESS: String(PROGRESS),
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  opened.child(child, `crash child (pid ${child.pid})`)
  const lines: string[] = []
  const waiting = new Set<() => void>()
  let buffer = ''
  child.stdout.on('data', (d: Buffer) => {
    buffer += d.toString()
    let nl
    while ((nl = buffer.indexOf('\n')) >= 0) {
      lines.push(buffer.slice(0, nl))
      buffer = buffer.slice(nl + 1)
    }
    for (const check of [...waiting]) check()
  })
  const exited = new Promise<number | string>((resolve) =>
    child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)),
  )
  const until = (done: (lines: string[]) => boolean) =>
    new Promise<void>((resolve, reject) => {
      const check = () => {
        if (!done(lines)) return
        waiting.delete(check)
        resolve()
      }
      waiting.add(check)
      check()
      void exited.then((how) => {
        if (!waiting.delete(check)) return
        reject(new Error(`child exited (${how}) first; its last line: ${lines.at(-1)}`))
      })
    })
  return {
    child,
    lines,
    exited,
    until,
    waitFor: (line) => until((all) => all.includes(line)),
  }
}

/** The lines that prove a life is under way: an acknowledged order, or more stored successes. */
const progress = (lines: string[]) => lines.filter((l) => /^(order|stored) /.test(l)).length

describe.each(backends)('crash recovery: %s', (_name, make) => {
  let backend: Backend
  const children: ChildProcess[] = []

  afterEach(async () => {
    for (const c of children.splice(0)) c.kill('SIGKILL')
    await backend.destroy()
  })

  it('survives SIGKILL at random moments with every order final and nothing lost or doubled', async () => {
    backend = make('crash')
    const random = seeded(`crash (${backend.name})`)
    const acked = new Map<string, number>()
    let kills = 0
    for (let life = 0; life <= KILLS; life++) {
      const childSeed = random.int(1, 2 ** 31 - 1)
      const run = live(backend, childSeed)
      children.push(run.child)
      await run.waitFor('ready')
      const ready = Date.now()
      if (life < KILLS) {
        // Killed once the child has printed this many lines of progress: mid-submission when
        // few (the first life acknowledges 40 orders), mid-run when more.
        const target = random.int(0, 36)
        const reached = await Promise.race([
          run.until((lines) => progress(lines) >= target).then(() => true),
          run.exited.then(() => false),
        ])
        run.child.kill('SIGKILL')
        // A life may finish its work before the kill comes; it must not fail either way.
        const how = await run.exited
        expect([0, 'SIGKILL']).toContain(how)
        if (how === 'SIGKILL') kills++
        const acks = run.lines.filter((l) => l.startsWith('order ')).length
        const last = run.lines.findLast((l) => l.startsWith('stored ')) ?? 'stored 0'
        random.log(
          `life ${life} (child seed ${childSeed}): ${reached ? 'killed' : 'ended first'} after ${progress(run.lines)} progress lines (target ${target}; ${acks} orders acknowledged, ${last}), ${Date.now() - ready} ms after ready`,
        )
      } else {
        await run.waitFor('done')
        expect(await run.exited).toBe(0)
      }
      for (const line of run.lines) {
        const m = /^order (\S+) (\d+)$/.exec(line)
        if (m !== null) acked.set(m[1]!, Number(m[2]))
      }
    }

    expect(kills).toBeGreaterThanOrEqual(3)
    const q = <T>(sql: string) => backend.query<T>(sql)
    const hex = backend.name === 'sqlite' ? 'lower(hex(id))' : "encode(id, 'hex')"
    const orders = await q<{ id: string; state: string; jobs: number | string }>(
      `SELECT ${hex} AS id, state, (SELECT count(*) FROM jobs j WHERE j.order_id = o.id) AS jobs FROM orders o`,
    )
    expect(orders).toHaveLength(ORDERS)
    // Every acknowledged order is there, with all its jobs.
    const stored = new Map(orders.map((o) => [o.id, o]))
    for (const [id, jobs] of acked) {
      const o = stored.get(id.replace(/-/g, ''))
      expect(o, `acknowledged order ${id}`).toBeDefined()
      expect(Number(o!.jobs)).toBe(jobs)
    }
    expect(orders.every((o) => Number(o.jobs) === JOBS)).toBe(true)
    expect(orders.filter((o) => o.state === 'running')).toEqual([])
    const notFinal = await q(
      "SELECT state FROM jobs WHERE state IN ('waiting', 'ready', 'running')",
    )
    expect(notFinal).toEqual([])
    // No job succeeded twice, in the attempts or in the event log.
    expect(
      await q(
        "SELECT job_id FROM target_fulfilments WHERE state = 'succeeded' GROUP BY job_id HAVING count(*) > 1",
      ),
    ).toEqual([])
    expect(
      await q(
        "SELECT job_id FROM events WHERE type = 'job:succeeded' GROUP BY job_id HAVING count(*) > 1",
      ),
    ).toEqual([])
    // A succeeded job has exactly one succeeded attempt, and every other job none.
    const mismatched = await q(
      `SELECT j.state, (SELECT count(*) FROM target_fulfilments f WHERE f.job_id = j.id AND f.state = 'succeeded') AS n
         FROM jobs j WHERE (j.state = 'succeeded') <> ((SELECT count(*) FROM target_fulfilments f WHERE f.job_id = j.id AND f.state = 'succeeded') = 1)`,
    )
    expect(mismatched).toEqual([])
    // The locks table agrees with the job states: released exactly when the job before succeeded,
    // and no job succeeded while a lock into it was held.
    const badLocks = await q(
      `SELECT l.released, a.state AS before, b.state AS after FROM locks l
         JOIN jobs a ON a.id = l.job_id JOIN jobs b ON b.id = l.next_id
         WHERE (l.released = 1) <> (a.state = 'succeeded') OR (b.state = 'succeeded' AND l.released = 0)`,
    )
    expect(badLocks).toEqual([])
    const counts = await q<{ state: string; n: number | string }>(
      'SELECT state, count(*) AS n FROM jobs GROUP BY state ORDER BY state',
    )
    process.stderr.write(
      `crash (${backend.name}): ${kills} kills, ${acked.size} orders acknowledged; jobs ${counts.map((c) => `${c.state} ${Number(c.n)}`).join(', ')}\n`,
    )
  }, 120_000)
})
