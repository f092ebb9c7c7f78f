/**
 * `peers`: the workload of `e2e-sqlite` (no-op jobs enqueued in bulk, 1,000 at a time, drained by
 * one worker process) on the queues Lockstep is compared with, against this machine's services:
 * BullMQ on Redis, pg-boss and Graphile Worker on PostgreSQL. Lockstep's e2e-sqlite runs first in
 * the same run; then each peer runs in a child process of its own, `bench/peers/NAME.ts`. Prints
 * each one's jobs_per_s, and Lockstep's jobs/s over the best peer's.
 *
 * The peers' packages are not the project's: they are in bench/peers/package.json, installed here
 * into bench/peers/node_modules on the first run. PEERS_JOBS sets the job count (default: that of
 * e2e-sqlite, 20,000), rounded up to whole packets of 1,000 as e2e-sqlite submits them.
 */
import { spawn, spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import pg from 'pg'
import { JOBS as E2E_JOBS, runE2eSqlite } from './e2e.ts'
import { report } from './report.ts'

const dir = join(import.meta.dirname, 'peers')
const pgUrl = process.env.LOCKSTEP_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
const JOBS = Math.ceil(Number(process.env.PEERS_JOBS ?? E2E_JOBS) / 1000) * 1000

/** The peers, each with the PostgreSQL schema it runs in, if it uses PostgreSQL. */
const peers: { name: string; schema?: string }[] = [
  { name: 'bullmq' },
  { name: 'pg-boss', schema: 'bench_pgboss' },
  { name: 'graphile-worker', schema: 'bench_graphile' },
]

/** Installs the peers' packages unless they are there; throws if that fails. */
function install(): void {
  if (existsSync(join(dir, 'node_modules'))) return
  const locked = existsSync(join(dir, 'package-lock.json'))
  const args = [locked ? 'ci' : 'install', '--prefix', dir, '--no-audit', '--no-fund']
  process.stderr.write(`peers: npm ${args.join(' ')}\n`)
  const npm = spawnSync('npm', args, { stdio: ['ignore', 'inherit', 'inherit'] })
  if (npm.error !== undefined) throw npm.error
  if (npm.status !== 0) throw new Error(`npm ${args[0]} in bench/peers exited ${npm.status}`)
}

async function dropSchema(schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: pgUrl })
  await client.connect()
  try {
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
  } finally {
    await client.end()
  }
}

interface Result {
  jobs: number
  seconds: number
  enqueueSeconds: number
}

/** Runs `bench/peers/NAME.ts` and resolves with the JSON line it prints. */
function runPeer(name: string, schema: string | undefined): Promise<Result> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(dir, `${name}.ts`)], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      PEERS_JOBS: String(JOBS),
      PEERS_PG_URL: pgUrl,
      ...(schema === undefined ? {} : { PEERS_SCHEMA: schema }),
    },
  })
  let out = ''
  let err = ''
  child.stdout.on('data', (d: Buffer) => (out += d.toString()))
  child.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)))
  // Generous: a 2-core machine drains the slowest peer at some hundreds of jobs per second.
  const timeout = setTimeout(() => child.kill('SIGKILL'), Math.max(120_000, JOBS * 30))
  return new Promise((resolve, reject) => {
    child.on('error', reject)
    child.on('exit', (code, signal) => {
      clearTimeout(timeout)
      const line = out.trim().split('\n').at(-1) ?? ''
      if (code === 0 && line.startsWith('{')) return resolve(JSON.parse(line) as Result)
      // The first line of the error, not its stack.
      const why = /^\w*Error: .*$/m.exec(err)?.[0] ?? err.trim().split('\n').at(-1) ?? ''
      reject(new Error(`${name} exited ${code ?? signal}: ${why}`))
    })
  })
}

export async function runPeers(): Promise<void> {
  let installed: Error | undefined
  try {
    install()
  } catch (e) {
    installed = e as Error
  }

  const lockstep = await runE2eSqlite(JOBS)
  report({ bench: 'peers', metric: 'lockstep_jobs_per_s', value: lockstep })

  let best = 0
  for (const { name, schema } of peers) {
    const metric = `${name}_jobs_per_s`
    try {
      if (installed !== undefined) throw installed
      if (schema !== undefined) await dropSchema(schema)
      const result = await runPeer(name, schema)
      process.stderr.write(
        `peers: ${name}: ${result.jobs} jobs in ${result.seconds.toFixed(2)} s, of which ${result.enqueueSeconds.toFixed(2)} s to enqueue them\n`,
      )
      const value = Math.round(result.jobs / result.seconds)
      best = Math.max(best, value)
      report({ bench: 'peers', metric, value })
    } catch (e) {
      report({ bench: 'peers', metric, value: NaN, error: (e as Error).message })
    } finally {
      if (schema !== undefined) await dropSchema(schema).catch(() => {})
    }
  }
  if (best > 0) {
    report({
      bench: 'peers',
      metric: 'lockstep_over_best_peer',
      value: Math.round((lockstep / best) * 100) / 100,
    })
  } else {
    report({ bench: 'peers', metric: 'lockstep_over_best_peer', value: NaN, error: 'no peer ran' })
  }
}
