/**
 * An `exec` job's processes end with it: whatever it leaves running when its main process exits,
 * times out or passes an output cap is ended with its process group before the attempt ends, so
 * nothing writes into a product once it is kept. Real processes, real files.
 */
import { spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { Assignment } from '../../src/core/protocol.ts'
import { execute } from '../../src/runner/execute.ts'
import type { ExecLimits } from '../../src/runner/exec-job.ts'
import { liveGroups } from '../../src/runner/process-group.ts'
import { ProductCache, productHash } from '../../src/runner/products.ts'
import { runJob } from '../../src/runner/run-job.ts'

function assignment(script: string, timeoutMs?: number): Assignment {
  return {
    orderId: 'o1',
    jobId: 'j1',
    productId: 'p1',
    name: 'job',
    attempt: 1,
    target: 'w1',
    op: { exec: ['sh', '-c', script] },
    resources: [],
    timeoutMs,
    inputs: [],
  }
}

/**
 * Whether a process can still run. A process that died but that no one reaped (an init that does
 * not wait for orphans) answers `kill(pid, 0)`, yet writes nothing: it counts as gone.
 */
function running(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ESRCH') return false
    throw e
  }
  let stat: string
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  } catch {
    return false
  }
  const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0]
  return state !== 'Z' && state !== 'X'
}

/** Waits for a condition, up to a bound; answers whether it came. */
async function until(condition: () => boolean, ms = 2000): Promise<boolean> {
  const end = Date.now() + ms
  while (!condition()) {
    if (Date.now() > end) return false
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  return true
}

let dir: string

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'lockstep-groups-'))
})

afterEach(() => {
  rmSync(dir, { recursive: true, force: true })
  // Every group a test started was ended: none is left for the exit hook.
  expect(liveGroups()).toEqual([])
})

/** A writer that appends to the product every few milliseconds, in the background. */
const writer = `(while :; do echo x >> "$LOCKSTEP_OUT/log"; sleep 0.01; done) &`

describe('a job’s process group', () => {
  it.each([
    { what: 'a background writer', script: `${writer} echo $!`, limits: {} },
    {
      what: 'a background writer that ignores SIGTERM',
      script: `trap '' TERM; ${writer} echo $!`,
      limits: { killGraceMs: 100 },
    },
  ])(
    'is ended when the main process exits: $what is gone and the product stays as kept',
    async ({ script, limits }: { script: string; limits: ExecLimits }) => {
      const cache = new ProductCache(join(dir, 'cache'), 1024 ** 3)
      await cache.open()
      const done = await execute(assignment(script), {
        cache,
        jobsDir: join(dir, 'jobs'),
        self: 'w1',
        data: {},
        locate: () => Promise.resolve([]),
        limits,
      })
      expect(done.result).toMatchObject({ ok: true, exitCode: 0 })
      const product = cache.path('p1')
      const pid = Number(readFileSync(join(product, 'stdout'), 'utf8').trim())
      expect(pid).toBeGreaterThan(0)
      expect(running(pid)).toBe(false)
      // Nothing can write any more; what is there is what was hashed when it was kept.
      expect(await productHash(product)).toBe(done.result.productHash)
    },
  )

  it('is ended on a timeout, the background process with it', async () => {
    mkdirSync(join(dir, 'inputs'))
    const result = await runJob(assignment('sleep 60 & echo $! > bg; wait', 300), {
      dir,
      data: {},
    }).result
    expect(result).toMatchObject({
      ok: false,
      reason: 'timeout',
      message: 'ran longer than 300 ms',
    })
    expect(running(Number(readFileSync(join(dir, 'bg'), 'utf8')))).toBe(false)
  })

  it('is ended when the process running the job exits without stopping it', async () => {
    // A worker that exits abruptly: the runner's exit hook kills the groups it leaves.
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(import.meta.dirname, 'fixtures', 'exit-while-running.ts'), dir],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    )
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve))
    expect(await exited).toBe(0)
    const pids = readFileSync(join(dir, 'pids'), 'utf8').trim().split(/\s+/).map(Number)
    expect(pids).toHaveLength(2)
    // SIGKILL was sent before that process exited; dying takes the killed ones a moment.
    for (const pid of pids) expect(await until(() => !running(pid))).toBe(true)
  })
})

describe('stdout and stderr caps', () => {
  const cap = 4096
  it.each([
    { stream: 'stdout', script: 'head -c 100000 /dev/zero', ok: false },
    { stream: 'stderr', script: 'head -c 100000 /dev/zero >&2', ok: false },
    { stream: 'stdout', script: 'yes', ok: false },
    {
      stream: 'stdout',
      script: `head -c ${cap} /dev/zero; head -c ${cap} /dev/zero >&2`,
      ok: true,
    },
  ])('$script: within the cap is $ok', async ({ stream, script, ok }) => {
    mkdirSync(join(dir, 'inputs'))
    const result = await runJob(assignment(script), {
      dir,
      data: {},
      limits: { maxStdoutBytes: cap, maxStderrBytes: cap },
    }).result
    if (ok) {
      expect(result).toEqual({ ok: true, exitCode: 0 })
      expect(statSync(join(dir, 'stdout')).size).toBe(cap)
      return
    }
    expect(result).toEqual({
      ok: false,
      reason: 'output-too-large',
      message: `${stream} passed its cap of ${cap} bytes`,
    })
    // What was kept of the stream stops at the cap.
    expect(statSync(join(dir, stream)).size).toBe(cap)
  })
})

describe('the message of a failed job', () => {
  it.each([
    { what: 'a short stderr', stderr: 'printf "it broke\\n"', message: 'it broke' },
    {
      what: 'the end of a long stderr, cut at a character',
      // 4009 bytes of two-byte characters and a line: the last 2000 start mid-character.
      stderr: 'yes é | head -n 2000 | tr -d "\\n"; printf "\\nthe end\\n"',
      message: /^é+\nthe end$/,
    },
    { what: 'nothing for an empty stderr', stderr: 'true', message: undefined },
  ])('is $what', async ({ stderr, message }) => {
    mkdirSync(join(dir, 'inputs'))
    const result = await runJob(assignment(`{ ${stderr}; } >&2; exit 3`), { dir, data: {} }).result
    expect(result.ok).toBe(false)
    expect(result.exitCode).toBe(3)
    if (message instanceof RegExp) {
      expect(result.message).toMatch(message)
      expect(Buffer.byteLength(result.message!)).toBeLessThanOrEqual(2000)
    } else {
      expect(result.message).toBe(message)
    }
  })

  it('reports a program that cannot start', async () => {
    mkdirSync(join(dir, 'inputs'))
    const a = { ...assignment(''), op: { exec: ['/no/such/program'] } }
    const result = await runJob(a, { dir, data: {} }).result
    expect(result).toMatchObject({ ok: false, reason: 'spawn-failed' })
    expect(readdirSync(dir).sort()).toEqual(['inputs', 'out', 'stderr', 'stdout'])
  })
})
