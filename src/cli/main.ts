/**
 * `lockstep <command>`: the scheduler, the worker agent and the workbench in one program.
 * Every command that prints data takes `--json`; every error says what to do.
 */
import { readFileSync } from 'node:fs'
import { describe } from './output.ts'
import type { Out } from './output.ts'
import { guardProcess } from './process-guards.ts'

/** A command: its arguments in, its exit code out. */
type Command = (args: string[], out: Out) => Promise<number>

// Each command's module is loaded when that command runs, never before: `lockstep help` and the
// workbench commands start without the HTTP server, the databases' drivers or the Kubernetes
// client, whose loading alone would take longer than the command.
const processCommands = () => import('./process-commands.ts')
const workbenchCommands = () => import('./workbench-commands.ts')

/** The long-running commands, which guard their process against stray errors. */
const longRunning: Record<string, () => Promise<Command>> = {
  up: async () => (await processCommands()).up,
  server: async () => (await processCommands()).server,
  worker: async () => (await processCommands()).worker,
}

/** True for `up`, `server` and `worker`, which serve until a signal; false for the rest. */
export function isLongRunning(command: string | undefined): boolean {
  return command !== undefined && Object.hasOwn(longRunning, command)
}

const oneShot: Record<string, () => Promise<Command>> = {
  submit: async () => (await workbenchCommands()).submit,
  backup: async () => (await import('./backup.ts')).backup,
  status: async () => (await workbenchCommands()).status,
  cancel: async () => (await workbenchCommands()).cancel,
  forget: async () => (await workbenchCommands()).forget,
  workers: async () => (await workbenchCommands()).workers,
  targets: async () => (await workbenchCommands()).workers,
  logs: async () => (await workbenchCommands()).logs,
  download: async () => (await workbenchCommands()).download,
}

/** The loader of a command's function, when there is such a command. */
function commandOf(name: string | undefined): (() => Promise<Command>) | undefined {
  if (name === undefined) return undefined
  if (Object.hasOwn(longRunning, name)) return longRunning[name]
  if (Object.hasOwn(oneShot, name)) return oneShot[name]
  return undefined
}

const usage = `lockstep — a distributed job scheduler

  lockstep up [--port 7300] [--workers 3]      a scheduler and local workers, for trying it out
  lockstep server [--port 7300] [--host H]     the scheduler (state in ./.lockstep, or
                  [--tokens role:name:token,…] LOCKSTEP_DATABASE_URL for PostgreSQL)
                  [--tokens-file PATH]         role:name:token lines, # comments
                  [--public-url URL]           the name clients reach it by (Host header)
                  [--insecure-open]            no tokens on a non-loopback --host
                  [--allow-download]
                  [--initiator-exec]           let the initiator run exec jobs: user code
                                               inside the scheduler process (builtins only
                                               without it; such jobs wait)
                  [--targets FILE]             Kubernetes clusters to run image jobs on
                                               (docs/kubernetes.md)
                  [--max-jobs-per-order N]     limits on what one request may cause, with
                  [--max-locks-per-order N]    their defaults in docs/operations.md
                  [--max-resources-per-packet N]
                  [--max-orders-in-flight-per-owner N]
                  [--max-streams-per-caller N]
  lockstep worker --server URL --id ID         a worker agent
                  [--token T] [--slots N] [--data project=PATH …] [--cache DIR]
                  [--allow builtin,exec]       the operation kinds it runs (builtin only:
                                               no user process on this machine)
                  [--host H --port P --advertise URL]  where peers fetch its products
                  [--max-stdout-bytes 64MiB]   a job writing more fails: output-too-large
                  [--max-stderr-bytes 64MiB]   (to stdout or to stderr)
                  [--kill-grace-ms MS]         SIGTERM to SIGKILL for a job's leftover
                                               processes (2000 by default)
                  [--cache-bytes 1GiB]         products kept beyond it are evicted
                  [--max-product-bytes 10GiB]  a job leaving more fails (output-too-large)
                  [--max-input-bytes 10GiB]    a fetched product unpacking to more is refused
  lockstep submit FILE [--priority N] [--min-sites N] [--wait-for-sites-ms MS] [--follow]
  lockstep status [ORDER]
  lockstep cancel ORDER | --job JOB
  lockstep workers | targets [NAME]            every target; or one, with its attempts
                  [--state S] [--limit N]      (newest first; running, failed, …)
  lockstep forget TARGET                       a worker that left or was lost is no longer a
                                               site of its projects (admins)
  lockstep logs JOB                            its output, or why its attempts failed
  lockstep download ORDER [--to DIR]           its products (when the server allows it)
                  [--max-bytes 10GiB]          the most one product may unpack to
  lockstep backup FILE [--data-dir DIR]        a consistent copy of the SQLite store, taken
                                               while the scheduler runs
  lockstep version                             this Lockstep's version

Workbench commands find the scheduler in --server/--token, LOCKSTEP_URL/LOCKSTEP_TOKEN, or the
credentials that 'lockstep up' writes to cli.json in the data directory (LOCKSTEP_DATA_DIR,
else ./.lockstep). Add --json for machine output.`

/** The package's version. package.json is two folders up from src/cli and from dist/cli alike. */
function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string
  }
  return pkg.version
}

/** Runs one command line; returns the exit code. */
export async function main(
  argv: string[],
  out: Out = (l) => process.stdout.write(`${l}\n`),
): Promise<number> {
  const [command, ...rest] = argv
  try {
    const load = commandOf(command)
    if (load !== undefined) {
      if (isLongRunning(command)) guardProcess(`lockstep ${command}`)
      const run = await load()
      return await run(rest, out)
    }
    if (command === 'version' || command === '--version') {
      out(version())
      return 0
    }
    if (command === undefined || command === 'help' || command === '--help') {
      out(usage)
      return command === undefined ? 2 : 0
    }
    process.stderr.write(`lockstep: no command '${command}'\n\n${usage}\n`)
    return 2
  } catch (e) {
    process.stderr.write(`lockstep ${command}: ${describe(e)}\n`)
    return 1
  }
}
