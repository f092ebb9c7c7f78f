/**
 * Runs an `exec` operation: the job's process as the leader of its own process group, its stdout
 * and stderr streamed into files beside `out/` through counters that hold them to their caps.
 *
 * Invariants:
 * - The attempt ends only after the whole group has ended and both streams are on disk: nothing
 *   the job started writes into its directory once its result is known, so the product kept
 *   from it is the product hashed.
 * - The first reason to stop wins (cancelled, timeout, output-too-large); the exit code of a
 *   process stopped from outside is not its result.
 * - A stream past its cap is cut at the cap; the rest is read and dropped, so the job never
 *   blocks on a full pipe while its group is ended.
 */
import { spawn } from 'node:child_process'
import { constants } from 'node:fs'
import { open } from 'node:fs/promises'
import { join } from 'node:path'
import { Transform } from 'node:stream'
import type { Readable, TransformCallback } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { Assignment } from '../core/protocol.ts'
import type { JobResult } from '../core/model.ts'
import { DEFAULT_KILL_GRACE_MS, ProcessGroup } from './process-group.ts'

/** Limits on an `exec` job, set by whoever runs it (a worker's options). */
export interface ExecLimits {
  /** How long the job's process group has after SIGTERM before SIGKILL. @default 2000 */
  killGraceMs?: number
  /** The most a job may write to stdout, in bytes. @default 64 MiB */
  maxStdoutBytes?: number
  /** The most a job may write to stderr, in bytes. @default 64 MiB */
  maxStderrBytes?: number
}

/** The default cap of each of stdout and stderr: 64 MiB. */
export const DEFAULT_MAX_OUTPUT_BYTES = 64 * 1024 * 1024

/** How long the pipes may stay open after the group ended: held only by a process that left it. */
const PIPES_AFTER_GROUP_MS = 1000

/** How much of the end of stderr a failed attempt keeps as its message. */
const TAIL_BYTES = 2000

type Exec = Extract<Assignment['op'], { exec: string[] }>

/**
 * Runs `op` in `dir` with environment `env`. `onCancel` receives the function that stops it from
 * outside (reason `cancelled`), as soon as it can be called.
 */
export async function runExec(
  a: Assignment,
  op: Exec,
  dir: string,
  env: NodeJS.ProcessEnv,
  limits: ExecLimits,
  onCancel: (cancel: (reason: string) => void) => void,
): Promise<JobResult> {
  const files = {
    stdout: await open(join(dir, 'stdout'), 'w'),
    stderr: await open(join(dir, 'stderr'), 'w'),
  }
  const child = spawn(op.exec[0]!, op.exec.slice(1), {
    cwd: dir,
    env,
    // Its own group: `kill(-pid)` reaches everything it starts.
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const group =
    child.pid === undefined
      ? undefined
      : new ProcessGroup(child.pid, limits.killGraceMs ?? DEFAULT_KILL_GRACE_MS)
  let stopped: JobResult | undefined
  const stop = (why: JobResult) => {
    stopped ??= why
    void group?.end()
  }
  onCancel((reason) => stop({ ok: false, reason: 'cancelled', message: reason }))
  const capped = (stream: 'stdout' | 'stderr', source: Readable, cap: number) =>
    pipeline(
      source,
      new ByteCap(cap, () =>
        stop({
          ok: false,
          reason: 'output-too-large',
          message: `${stream} passed its cap of ${cap} bytes`,
        }),
      ),
      files[stream].createWriteStream(),
    )
  const outputs = Promise.all([
    capped('stdout', child.stdout, limits.maxStdoutBytes ?? DEFAULT_MAX_OUTPUT_BYTES),
    capped('stderr', child.stderr, limits.maxStderrBytes ?? DEFAULT_MAX_OUTPUT_BYTES),
  ]).catch(() => {
    // A pipe cut short (the job was never started, or held by a process that left its group):
    // what reached the file is kept.
  })
  const timer =
    a.timeoutMs === undefined
      ? undefined
      : setTimeout(
          () =>
            stop({ ok: false, reason: 'timeout', message: `ran longer than ${a.timeoutMs} ms` }),
          a.timeoutMs,
        )
  const exit = await new Promise<
    { error: Error } | { code: number | null; signal: NodeJS.Signals | null }
  >((resolve) => {
    child.once('error', (error) => resolve({ error }))
    child.once('exit', (code, signal) => resolve({ code, signal }))
  })
  if (timer !== undefined) clearTimeout(timer)
  // The main process is gone; what it left behind goes now, before anything is read or kept.
  await group?.end()
  if (!(await settles(outputs, PIPES_AFTER_GROUP_MS))) {
    child.stdout?.destroy()
    child.stderr?.destroy()
    await outputs
  }
  await Promise.all([files.stdout.close(), files.stderr.close()])
  if ('error' in exit) return { ok: false, reason: 'spawn-failed', message: exit.error.message }
  if (stopped !== undefined) return stopped
  if (exit.code === 0) return { ok: true, exitCode: 0 }
  if (exit.code !== null) return { ok: false, exitCode: exit.code, message: await tail(dir) }
  return { ok: false, reason: 'signal', message: `killed by ${exit.signal}` }
}

/**
 * Counts the bytes that pass and lets through at most `cap` of them; calls `exceeded` once, when
 * the count first passes the cap.
 */
class ByteCap extends Transform {
  private total = 0
  private readonly cap: number
  private readonly exceeded: () => void

  constructor(cap: number, exceeded: () => void) {
    super()
    this.cap = cap
    this.exceeded = exceeded
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    const room = this.cap - this.total
    this.total += chunk.length
    if (room > 0) this.push(room >= chunk.length ? chunk : chunk.subarray(0, room))
    if (this.total > this.cap && this.total - chunk.length <= this.cap) this.exceeded()
    done()
  }
}

/** Whether `p` settles within `ms`. */
async function settles(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms)
  })
  try {
    return await Promise.race([p.then(() => true as const), late])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * The last lines of a failed job's stderr, kept with the attempt as its product is not: at most
 * {@link TAIL_BYTES} from the end, read at an offset so a large stderr costs one small read. The
 * job owns its directory, so a link in the file's place is not followed.
 */
async function tail(dir: string): Promise<string | undefined> {
  let file
  try {
    file = await open(
      join(dir, 'stderr'),
      constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK,
    )
  } catch {
    return undefined
  }
  try {
    const stat = await file.stat()
    if (!stat.isFile()) return undefined
    const length = Math.min(stat.size, TAIL_BYTES)
    const buffer = Buffer.alloc(length)
    const { bytesRead } = await file.read(buffer, 0, length, stat.size - length)
    // Cut at a character: the first bytes may be the end of one split by the offset.
    let start = 0
    while (start < bytesRead && (buffer[start]! & 0xc0) === 0x80) start++
    const text = buffer.subarray(start, bytesRead).toString('utf8')
    return text.trim() === '' ? undefined : text.trimEnd()
  } finally {
    await file.close()
  }
}
