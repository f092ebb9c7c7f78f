/**
 * Runs one attempt in a fresh job directory: inputs under `inputs/<name>/`, the product is what
 * the job writes to `out/`, stdout and stderr are kept beside it. An `exec` operation runs as its
 * own process group, so a timeout or a cancellation kills everything it started.
 */
import { spawn } from 'node:child_process'
import { open } from 'node:fs/promises'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import type { Assignment } from '../core/engine/engine.ts'
import type { JobResult } from '../core/model.ts'

/** What a running job can be asked to do from outside. */
export interface RunningJob {
  /** Kills the job (its whole process group); it ends with reason `cancelled`. */
  cancel(reason: string): void
  result: Promise<JobResult>
}

export interface RunContext {
  /** The job directory, already holding `inputs/`. */
  dir: string
  /** Data paths by project. */
  data: Record<string, string>
}

export function runJob(a: Assignment, ctx: RunContext): RunningJob {
  const op = a.op
  let cancel: (reason: string) => void = () => {}
  const result = (async (): Promise<JobResult> => {
    await mkdir(join(ctx.dir, 'out'), { recursive: true })
    if ('builtin' in op) return runBuiltin(op.builtin)
    if ('exec' in op) {
      const env: Record<string, string> = {
        ...(process.env as Record<string, string>),
        ...op.env,
        LOCKSTEP_JOB_ID: a.jobId,
        LOCKSTEP_ORDER_ID: a.orderId,
        LOCKSTEP_JOB_NAME: a.name,
        LOCKSTEP_ATTEMPT: String(a.attempt),
        LOCKSTEP_INPUTS: join(ctx.dir, 'inputs'),
        LOCKSTEP_OUT: join(ctx.dir, 'out'),
      }
      const projects = Object.entries(ctx.data)
      for (const [project, path] of projects) {
        env[`LOCKSTEP_DATA_${project.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`] = path
      }
      if (projects.length === 1) env.LOCKSTEP_DATA = projects[0]![1]
      const stdout = await open(join(ctx.dir, 'stdout'), 'w')
      const stderr = await open(join(ctx.dir, 'stderr'), 'w')
      try {
        return await new Promise<JobResult>((resolve) => {
          const child = spawn(op.exec[0]!, op.exec.slice(1), {
            cwd: ctx.dir,
            env,
            detached: true,
            stdio: ['ignore', stdout.fd, stderr.fd],
          })
          let stopped: JobResult | undefined
          const kill = (why: JobResult) => {
            stopped ??= why
            try {
              if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL')
            } catch {
              // Already gone.
            }
          }
          cancel = (reason) => kill({ ok: false, reason: 'cancelled', message: reason })
          const timer =
            a.timeoutMs === undefined
              ? undefined
              : setTimeout(
                  () =>
                    kill({
                      ok: false,
                      reason: 'timeout',
                      message: `ran longer than ${a.timeoutMs} ms`,
                    }),
                  a.timeoutMs,
                )
          child.on('error', (e) => {
            if (timer !== undefined) clearTimeout(timer)
            resolve({ ok: false, reason: 'spawn-failed', message: e.message })
          })
          child.on('exit', (code, signal) => {
            if (timer !== undefined) clearTimeout(timer)
            if (stopped !== undefined) resolve(stopped)
            else if (code === 0) resolve({ ok: true, exitCode: 0 })
            else if (code !== null) resolve({ ok: false, exitCode: code })
            else resolve({ ok: false, reason: 'signal', message: `killed by ${signal}` })
          })
        })
      } finally {
        await stdout.close()
        await stderr.close()
      }
    }
    return {
      ok: false,
      reason: 'unsupported',
      message:
        'this worker runs exec and builtin operations; image operations need a Kubernetes target',
    }
  })()
  return {
    cancel: (reason) => cancel(reason),
    result,
  }
}

/** The built-in operations a worker runs without a process. */
function runBuiltin(name: string): JobResult {
  switch (name) {
    case 'noop':
      return { ok: true }
    default:
      return { ok: false, reason: 'unknown-builtin', message: `no builtin operation '${name}'` }
  }
}
