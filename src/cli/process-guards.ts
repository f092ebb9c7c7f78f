/**
 * What a long-running Lockstep process (the scheduler, a worker, `lockstep up`) does with an
 * error that nothing caught. A promise rejected with no handler is logged with its stack and the
 * process keeps serving: the request or the loop it belonged to has ended, and everything else
 * stands. An exception thrown out of a callback may have left memory half-changed, so it is
 * logged and the process exits (code 70): the store holds every acknowledged change, and a
 * restart resumes from it.
 */

/** Installs the handlers once per process; `name` prefixes every line (`lockstep server`). */
export function guardProcess(name: string): void {
  if (guarded) return
  guarded = true
  process.on('unhandledRejection', (reason) => {
    process.stderr.write(
      `${name}: a promise failed with no handler (still serving): ${stackOf(reason)}\n`,
    )
  })
  process.on('uncaughtException', (error, origin) => {
    process.stderr.write(
      `${name}: ${origin === 'uncaughtException' ? 'an uncaught exception' : origin}: ${stackOf(error)}\n` +
        `${name}: stopping (exit 70); a restart carries on from the store\n`,
    )
    process.exit(70)
  })
}

let guarded = false

function stackOf(reason: unknown): string {
  return reason instanceof Error ? (reason.stack ?? String(reason)) : String(reason)
}
