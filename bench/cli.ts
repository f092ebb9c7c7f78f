/**
 * `cli`: how long the installed `lockstep` command takes, from its start to its exit, as a user
 * waits for it: `lockstep help`, `lockstep version`, and `lockstep status` against a running
 * scheduler (started here on a free loopback port, holding one order to list). Each is run
 * RUNS times after one run that is not counted; the figures are the median, with min and max on
 * stderr. Target: ≤ 300 ms each. `node -e 0` is timed too, for scale: Node's own start.
 *
 * It times the compiled CLI in dist/, which is what `npx lockstep` runs, and builds dist/ first
 * when a source is newer than it, so the figure is always that of the sources at hand.
 */
import { spawn, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { LockstepClient } from '../src/client/client.ts'
import { startServer, stopProcess } from './processes.ts'
import { median, report } from './report.ts'

const RUNS = Number(process.env.CLI_RUNS ?? 20)
const TARGET_MS = 300

export async function runCli(): Promise<void> {
  buildIfStale()
  const dir = mkdtempSync(join(tmpdir(), 'lockstep-cli-bench-'))
  let server: ChildProcess | undefined
  try {
    // The scheduler runs compiled too: it answers `status` as an installed one would.
    const started = await startServer(['--port', '0', '--data-dir', join(dir, 'data')], {
      LOCKSTEP_SOURCE: '0',
      LOCKSTEP_TOKENS: '',
      LOCKSTEP_DATABASE_URL: '',
    })
    server = started.child
    await new LockstepClient({ url: started.url }).submitDocument(
      'name: one\njobs:\n  - name: a\n    op: { exec: ["true"] }\n',
    )
    // Node's own start, for scale: on a busy machine it alone can take most of the target.
    const node = await timeRuns(process.execPath, ['-e', '0'])
    process.stderr.write(`cli: node -e 0: ${summary(node)}\n`)
    report({ bench: 'cli', metric: 'node_ms_median', value: Math.round(median(node)) })
    const commands: [string, string[]][] = [
      ['help', ['help']],
      ['version', ['version']],
      ['status', ['status', '--server', started.url]],
    ]
    for (const [name, args] of commands) {
      const times = await timeRuns(process.execPath, ['bin/lockstep.js', ...args])
      process.stderr.write(`cli: lockstep ${args[0]}: ${summary(times)}\n`)
      report({
        bench: 'cli',
        metric: `${name}_ms_median`,
        value: Math.round(median(times)),
        target: { max: TARGET_MS },
      })
    }
  } finally {
    if (server !== undefined) await stopProcess(server)
    rmSync(dir, { recursive: true, force: true })
  }
}

/** Wall milliseconds of RUNS runs of a command, from spawn to exit, after one uncounted run. */
async function timeRuns(command: string, args: string[]): Promise<number[]> {
  const times: number[] = []
  for (let run = -1; run < RUNS; run++) {
    const start = performance.now()
    const code = await exitCode(command, args)
    const ms = performance.now() - start
    if (code !== 0) throw new Error(`${args.join(' ')} exited ${code}`)
    if (run >= 0) times.push(ms)
  }
  return times
}

function summary(times: number[]): string {
  const ms = (t: number) => `${t.toFixed(0)} ms`
  return `min ${ms(Math.min(...times))}, median ${ms(median(times))}, max ${ms(Math.max(...times))} over ${times.length} runs`
}

/** Runs a command without LOCKSTEP_SOURCE (the compiled CLI) and resolves with its exit code. */
function exitCode(command: string, args: string[]): Promise<number | null> {
  const env = { ...process.env }
  delete env.LOCKSTEP_SOURCE
  const child = spawn(command, args, { stdio: 'ignore', env })
  return new Promise((resolve, reject) => {
    child.on('error', reject)
    child.on('exit', (code) => resolve(code))
  })
}

/** Builds dist/ when it is missing or older than the sources (`scripts/build.js --if-stale`). */
function buildIfStale(): void {
  const r = spawnSync(process.execPath, ['scripts/build.js', '--if-stale'], { stdio: 'inherit' })
  if (r.status !== 0) throw new Error(`npm run build failed (exit ${r.status})`)
}
