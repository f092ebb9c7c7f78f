/**
 * `soak`: 1,000 workers long-polling one `lockstep server` process over real HTTP (simulated in
 * this process: each registers, then heartbeats in a loop, finishing its no-op jobs at once),
 * while packets of no-op jobs arrive at a steady rate, for 60 s (`SOAK_SECONDS`). Samples the
 * scheduler's heap (from its `/metrics`) and its open sockets (from `/proc`) every 5 s, and
 * prints whether they stayed flat: the last third's mean against the first third's. Prints the
 * p99 answer time of the heartbeats that carried results (a long poll with nothing to say waits
 * by design, so idle ones are not counted).
 */
import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, readdirSync, readlinkSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { LockstepClient } from '../src/client/client.ts'
import type { HeartbeatInput } from '../src/core/protocol.ts'
import { startServer, stopProcess } from './processes.ts'
import { percentile, report } from './report.ts'

const WORKERS = Number(process.env.SOAK_WORKERS ?? 1_000)
const SECONDS = Number(process.env.SOAK_SECONDS ?? 60)
/** Packets submitted per second, each of JOBS_PER_PACKET no-op jobs. */
const PACKETS_PER_S = 20
const JOBS_PER_PACKET = 50
const TOKEN = 'soak-admin-token'
const WORKER = 'soak-worker-token'

/** Sockets the process holds open, from its file descriptors. */
function sockets(pid: number): number {
  let n = 0
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('socket:')) n++
    } catch {
      // Closed while we looked.
    }
  }
  return n
}

async function heapUsed(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text()
  return Number(/^nodejs_heap_size_used_bytes (\S+)$/m.exec(text)?.[1] ?? NaN)
}

/** Flat: the last third's mean is within 25 % of the first third's (after a warm-up sample). */
function drift(samples: number[]): number {
  const third = Math.max(1, Math.floor(samples.length / 3))
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length
  return mean(samples.slice(-third)) / mean(samples.slice(1, 1 + third)) - 1
}

export async function runSoak(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'lockstep-soak-'))
  const stop = new AbortController()
  let server: ChildProcess | undefined
  try {
    const started = await startServer(
      ['--port', '0', '--tokens', `admin:soak:${TOKEN},worker:*:${WORKER}`, '--data-dir', dir],
      { LOCKSTEP_DATABASE_URL: '' },
    )
    server = started.child
    const url = started.url
    const admin = new LockstepClient({ url, token: TOKEN })
    const fleet = new LockstepClient({ url, token: WORKER })
    const answered: number[] = []
    let jobsDone = 0
    let failures = 0

    // The workers: register, then heartbeat until the end, reporting each job done at once.
    const workers = Array.from({ length: WORKERS }, async (_, i) => {
      const id = `soak-${i}`
      await fleet.register({ id, slots: 1 })
      let body: HeartbeatInput = { free: 1, waitMs: 10_000 }
      while (!stop.signal.aborted) {
        const started = performance.now()
        try {
          const reply = await fleet.heartbeat(id, body, stop.signal)
          if (body.results !== undefined) answered.push(performance.now() - started)
          jobsDone += body.results?.length ?? 0
          body =
            reply.assignments.length === 0
              ? { free: 1, waitMs: 10_000 }
              : {
                  free: 1,
                  waitMs: 0,
                  results: reply.assignments.map((a) => ({
                    jobId: a.jobId,
                    attempt: a.attempt,
                    result: { ok: true },
                  })),
                }
        } catch {
          if (!stop.signal.aborted) failures++
        }
      }
    })

    // The submissions: a steady stream of packets.
    const submitter = (async () => {
      let p = 0
      while (!stop.signal.aborted) {
        const tick = performance.now()
        await admin
          .submit({
            packet: {
              name: `soak-${p++}`,
              jobs: Array.from({ length: JOBS_PER_PACKET }, (_, j) => ({
                name: `j${j}`,
                op: { builtin: 'noop' },
              })),
            },
          })
          .catch(() => failures++)
        const wait = 1000 / PACKETS_PER_S - (performance.now() - tick)
        if (wait > 0) await new Promise((r) => setTimeout(r, wait))
      }
    })()

    const heaps: number[] = []
    const open: number[] = []
    const begin = performance.now()
    while (performance.now() - begin < SECONDS * 1000) {
      await new Promise((r) => setTimeout(r, 5000))
      heaps.push(await heapUsed(url))
      open.push(sockets(server.pid!))
      process.stderr.write(
        `soak: ${Math.round((performance.now() - begin) / 1000)} s, heap ${(heaps.at(-1)! / 2 ** 20).toFixed(1)} MiB, ${open.at(-1)} sockets, ${jobsDone} jobs done\n`,
      )
    }
    stop.abort()
    await submitter
    await Promise.allSettled(workers)
    const seconds = (performance.now() - begin) / 1000
    report({ bench: 'soak', metric: 'jobs_per_s', value: Math.round(jobsDone / seconds) })
    report({
      bench: 'soak',
      metric: 'heartbeat_p99_ms',
      value: Math.round(percentile(answered, 99) * 10) / 10,
    })
    report({ bench: 'soak', metric: 'heap_mib_last', value: Math.round(heaps.at(-1)! / 2 ** 20) })
    report({
      bench: 'soak',
      metric: 'heap_drift_pct',
      value: Math.round(drift(heaps) * 100),
      target: { max: 25 },
    })
    report({ bench: 'soak', metric: 'sockets_last', value: open.at(-1)! })
    report({
      bench: 'soak',
      metric: 'sockets_drift_pct',
      value: Math.round(drift(open) * 100),
      target: { max: 25 },
    })
    report({ bench: 'soak', metric: 'client_failures', value: failures, target: { max: 0 } })
  } finally {
    stop.abort()
    if (server !== undefined) await stopProcess(server)
    rmSync(dir, { recursive: true, force: true })
  }
}
