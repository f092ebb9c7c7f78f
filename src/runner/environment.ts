/**
 * What a job sees of the place it runs in: its environment and its data paths.
 *
 * Invariant: a job's environment is built from scratch, never copied from the process that runs
 * it. The worker agent and the scheduler (where the initiator runs) hold secrets in their own
 * environment (`LOCKSTEP_TOKEN`, `LOCKSTEP_TOKENS`, `LOCKSTEP_DATABASE_URL`, whatever else an
 * operator set); a job gets only the few host variables a process needs to start (`PATH`,
 * `LANG`, `TZ`), a `HOME` of its own, its operation's `env`, and Lockstep's job variables.
 *
 * Invariant: a job reads the data of its own artifact's project only, never of every project the
 * worker holds.
 */
import { join } from 'node:path'
import { resourceVariables } from '../core/job-variables.ts'
import type { Assignment } from '../core/protocol.ts'

/** The host variables a job inherits when they are set: enough to find programs and print. */
export const INHERITED_VARIABLES: readonly string[] = ['PATH', 'LANG', 'TZ']

/** The `PATH` a job gets when the host has none. */
const DEFAULT_PATH = '/usr/local/bin:/usr/bin:/bin'

/**
 * The data paths a job may read: its artifact's project, if this target holds it; nothing for a
 * job that belongs to no artifact (a packet's job names no project).
 */
export function dataFor(
  a: Pick<Assignment, 'project'>,
  data: Readonly<Record<string, string>>,
): Record<string, string> {
  if (a.project === undefined) return {}
  const path = Object.hasOwn(data, a.project) ? data[a.project] : undefined
  return path === undefined ? {} : { [a.project]: path }
}

/** The variable a project's data path is given under: `LOCKSTEP_DATA_<PROJECT>`. */
export function dataVariable(project: string): string {
  return `LOCKSTEP_DATA_${project.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`
}

/** The file in a job directory where an `exec` job lists its artefacts (`LOCKSTEP_ARTEFACTS`). */
export const ARTEFACTS_FILE = 'artefacts'

/**
 * The environment of an `exec` job run in `dir`: the allowed host variables, `HOME` (the job
 * directory), the operation's `env`, its resources (`LOCKSTEP_RESOURCE_<KEY>`), then Lockstep's
 * variables, which neither the operation nor a resource can override. `host` is the environment
 * of the process that runs the job; only {@link INHERITED_VARIABLES} are read from it.
 */
export function jobEnvironment(
  a: Assignment,
  dir: string,
  data: Readonly<Record<string, string>>,
  host: NodeJS.ProcessEnv = process.env,
): Record<string, string> {
  const env: Record<string, string> = {}
  for (const name of INHERITED_VARIABLES) {
    const value = host[name]
    if (value !== undefined) env[name] = value
  }
  env.PATH ??= DEFAULT_PATH
  env.HOME = dir
  if ('exec' in a.op || 'image' in a.op) Object.assign(env, a.op.env)
  Object.assign(env, resourceVariables(a.resources))
  env.LOCKSTEP_JOB_ID = a.jobId
  env.LOCKSTEP_ORDER_ID = a.orderId
  env.LOCKSTEP_JOB_NAME = a.name
  env.LOCKSTEP_ATTEMPT = String(a.attempt)
  env.LOCKSTEP_INPUTS = join(dir, 'inputs')
  env.LOCKSTEP_OUT = join(dir, 'out')
  // Beside `out/`, not in it: the list of artefacts is the attempt's, not part of its product.
  env.LOCKSTEP_ARTEFACTS = join(dir, ARTEFACTS_FILE)
  for (const [project, path] of Object.entries(data)) {
    env[dataVariable(project)] = path
    env.LOCKSTEP_DATA = path
  }
  return env
}
