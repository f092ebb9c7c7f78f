/**
 * What the peers' scripts share. Each runs in a child process of `bench/peers.ts`, which passes
 * the job count in PEERS_JOBS and reads the JSON line that `done` prints.
 *
 * The peers' packages live in bench/peers/node_modules, installed by the bench and not by the
 * project, so the scripts load them by a name in a variable: the type checker and the linter do
 * not look for them, and each script says in a small interface what it uses of its package.
 */
import { performance } from 'node:perf_hooks'

/** Jobs to run: the count that Lockstep's e2e bench ran in the same run. */
export const JOBS = Number(process.env.PEERS_JOBS ?? 20_000)

/** Jobs per bulk enqueue: Lockstep's e2e bench submits packets of this many. */
export const BATCH = 1000

export const pgUrl = process.env.PEERS_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test'

/** Loads one of the peers' packages from bench/peers/node_modules. */
export async function load<T>(name: string): Promise<T> {
  return (await import(name)) as T
}

/** `count` jobs in batches of BATCH, as the arguments of one bulk enqueue each. */
export function batches<J>(count: number, job: (i: number) => J): J[][] {
  return Array.from({ length: Math.ceil(count / BATCH) }, (_, b) =>
    Array.from({ length: Math.min(BATCH, count - b * BATCH) }, (_, i) => job(b * BATCH + i)),
  )
}

/** Resolves once `check` is true, looking every `ms`. */
export async function until(check: () => boolean | Promise<boolean>, ms = 5): Promise<void> {
  while (!(await check())) await new Promise((r) => setTimeout(r, ms))
}

/** A stopwatch in seconds. */
export function stopwatch(): () => number {
  const begin = performance.now()
  return () => (performance.now() - begin) / 1000
}

/** Tells the parent how it went: one JSON line on stdout. */
export function done(result: { jobs: number; seconds: number; enqueueSeconds: number }): void {
  process.stdout.write(`${JSON.stringify(result)}\n`)
}
