/**
 * Runs one attempt in a fresh job directory: inputs under `inputs/<name>/`, the product is what
 * the job writes to `out/`, stdout and stderr are kept beside it. An `exec` operation runs as its
 * own process group (`exec-job.ts`), ended whole when its main process exits, on a timeout, a
 * cancellation or output past a cap.
 */
import { randomInt } from 'node:crypto'
import { constants } from 'node:fs'
import { mkdir, open, readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Assignment } from '../core/protocol.ts'
import { aggregate, isAnalytic, local, parseCsv } from '../core/analytics.ts'
import type { AnalyticsArgs, Result, Table } from '../core/analytics.ts'
import { ValidationError } from '../core/errors.ts'
import { parseArtefacts } from '../core/job-variables.ts'
import type { JobResult } from '../core/model.ts'
import { ARTEFACTS_FILE, dataFor, jobEnvironment } from './environment.ts'
import { runExec } from './exec-job.ts'
import type { ExecLimits } from './exec-job.ts'

/** What a running job can be asked to do from outside. */
export interface RunningJob {
  /** Kills the job (its whole process group); it ends with reason `cancelled`. */
  cancel(reason: string): void
  result: Promise<JobResult>
}

export interface RunContext {
  /** The job directory, already holding `inputs/`. */
  dir: string
  /**
   * Data paths by project: every project this target holds. A job reads only its artifact's
   * project of them (see `environment.ts`).
   */
  data: Record<string, string>
  /** True on the initiator: analytics builtins aggregate instead of reading data. */
  initiator?: boolean
  /** Where the initiator keeps what it must not share (a secure count's mask). */
  secrets?: string
  /** The limits an `exec` job runs under (kill grace, output caps). @default each default */
  limits?: ExecLimits
}

export function runJob(a: Assignment, ctx: RunContext): RunningJob {
  const op = a.op
  // A cancel that comes before the process does is kept and applied once it starts.
  let early: string | undefined
  let cancel: (reason: string) => void = (reason) => {
    early ??= reason
  }
  const result = (async (): Promise<JobResult> => {
    await mkdir(join(ctx.dir, 'out'), { recursive: true })
    if ('builtin' in op) return runBuiltin(op.builtin, op.args ?? {}, a, ctx)
    if ('exec' in op) {
      const env = jobEnvironment(a, ctx.dir, dataFor(a, ctx.data))
      const ended = await runExec(a, op, ctx.dir, env, ctx.limits ?? {}, (stop) => {
        cancel = stop
        if (early !== undefined) stop(early)
      })
      return withArtefacts(ended, ctx.dir)
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

/** The largest artefacts file read: 100 URLs of 2 KiB fit in it many times over. */
const MAX_ARTEFACTS_FILE = 1024 * 1024

/**
 * Adds the artefacts an `exec` job listed in `$LOCKSTEP_ARTEFACTS` to how it ended. A list that
 * cannot be read or does not parse fails the attempt with reason `artefacts`, even after exit
 * code 0: the job said it published something, and what it said cannot be kept. A job that
 * failed anyway keeps its own failure; one stopped from outside (cancelled, timed out, killed)
 * or never started is not read.
 */
async function withArtefacts(ended: JobResult, dir: string): Promise<JobResult> {
  if (ended.reason !== undefined) return ended
  const read = await readArtefactsFile(join(dir, ARTEFACTS_FILE))
  if (read === undefined) return ended
  const parsed = 'problem' in read ? read : parseArtefacts(read.text)
  if ('problem' in parsed) {
    return ended.ok ? { ok: false, reason: 'artefacts', message: parsed.problem } : ended
  }
  return parsed.artefacts.length === 0 ? ended : { ...ended, artefacts: parsed.artefacts }
}

/**
 * The text of the artefacts file; undefined when the job wrote none. The job owns its directory,
 * so the file is opened as the job might have left it: a link is refused (it would read a file
 * of the agent's into the attempt's message) and so is anything but a plain file (a FIFO would
 * hang the read).
 */
async function readArtefactsFile(
  path: string,
): Promise<{ text: string } | { problem: string } | undefined> {
  let file
  try {
    file = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK)
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return undefined
    return {
      problem:
        code === 'ELOOP'
          ? '$LOCKSTEP_ARTEFACTS must be a file, not a link'
          : `cannot read $LOCKSTEP_ARTEFACTS: ${(e as Error).message}`,
    }
  }
  try {
    const stat = await file.stat()
    if (!stat.isFile()) return { problem: '$LOCKSTEP_ARTEFACTS must be a plain file' }
    if (stat.size > MAX_ARTEFACTS_FILE) {
      return { problem: `$LOCKSTEP_ARTEFACTS is larger than ${MAX_ARTEFACTS_FILE} bytes` }
    }
    const buffer = Buffer.alloc(stat.size)
    const { bytesRead } = await file.read(buffer, 0, stat.size, 0)
    return { text: buffer.subarray(0, bytesRead).toString('utf8') }
  } finally {
    await file.close()
  }
}

/** Arguments of the builtins. */
type BuiltinArgs = AnalyticsArgs & { project?: string }

/**
 * The built-in operations, run without a process: `noop`; the federated analytics (`count`,
 * `sum`, `mean`, `histogram`, `logreg`: local on a worker, aggregate on the initiator); and
 * `secure-count`, a count that passes through every worker as a masked running total.
 * Results go to `out/result.json`; the results of the jobs before are read from their inputs.
 */
async function runBuiltin(
  name: string,
  args: BuiltinArgs,
  a: Assignment,
  ctx: RunContext,
): Promise<JobResult> {
  if (name === 'noop') return { ok: true }
  try {
    const inputs = await readInputs(ctx.dir)
    let result: Result
    if (isAnalytic(name)) {
      result =
        ctx.initiator === true
          ? aggregate(name, args, inputs)
          : local(name, await readTable(ctx, args, a), args, inputs)
    } else if (name === 'secure-count') {
      result = await secureCount(args, a, ctx, inputs)
    } else {
      return { ok: false, reason: 'unknown-builtin', message: `no builtin operation '${name}'` }
    }
    await writeFile(join(ctx.dir, 'out', 'result.json'), `${JSON.stringify(result)}\n`)
    return { ok: true }
  } catch (e) {
    if (e instanceof ValidationError) {
      return { ok: false, reason: 'invalid-args', message: e.message }
    }
    return { ok: false, reason: 'error', message: (e as Error).message }
  }
}

/** The results of the jobs before, in the order of their names. */
async function readInputs(dir: string): Promise<Result[]> {
  const names = (await readdir(join(dir, 'inputs'))).sort()
  const out: Result[] = []
  for (const name of names) {
    const text = await readFile(join(dir, 'inputs', name, 'result.json'), 'utf8').catch(() => '')
    if (text !== '') out.push(JSON.parse(text) as Result)
  }
  return out
}

/**
 * The table a builtin reads. A job of an artifact reads its artifact's project only; a packet's
 * builtin (which names no artifact) reads the project its `args.project` names, as the builtins
 * are Lockstep's own code and return aggregates, not rows.
 */
async function readTable(ctx: RunContext, args: BuiltinArgs, a: Assignment): Promise<Table> {
  const data = a.project === undefined ? ctx.data : dataFor(a, ctx.data)
  const projects = Object.keys(data)
  const project = args.project ?? (projects.length === 1 ? projects[0] : undefined)
  const path = project === undefined || !Object.hasOwn(data, project) ? undefined : data[project]
  if (path === undefined) {
    throw new ValidationError([
      {
        path: 'args.project',
        message:
          a.project !== undefined && projects.length === 0
            ? `this worker holds no data of project ${a.project}`
            : a.project !== undefined
              ? `a job of project ${a.project} reads only that project's data`
              : projects.length === 0
                ? 'this worker holds no data; start it with --data project=PATH'
                : `say which project: this worker holds ${projects.join(', ')}`,
      },
    ])
  }
  return parseCsv(await readFile(path, 'utf8'), path)
}

/**
 * A count through every worker without any of them seeing another's count: the initiator starts
 * a running total at a random mask, each worker adds its count, and the initiator takes the mask
 * off at the end.
 */
async function secureCount(
  args: BuiltinArgs,
  a: Assignment,
  ctx: RunContext,
  inputs: Result[],
): Promise<Result> {
  if (ctx.initiator !== true) {
    const table = await readTable(ctx, args, a)
    const running = Number(inputs[0]?.running ?? 0)
    return { running: running + Number(local('count', table, args, []).count) }
  }
  const secrets = ctx.secrets ?? join(ctx.dir, 'secrets')
  await mkdir(secrets, { recursive: true })
  const file = join(secrets, `${a.orderId}-secure-count.json`)
  if (inputs.length === 0) {
    const mask = randomInt(1_000_000_000)
    await writeFile(file, JSON.stringify({ mask }))
    return { running: mask }
  }
  const { mask } = JSON.parse(await readFile(file, 'utf8')) as { mask: number }
  return { count: Number(inputs[0]!.running) - mask }
}
