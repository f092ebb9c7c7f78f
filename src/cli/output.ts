/**
 * How the CLI speaks to its user: commands print lines through an {@link Out}, and an error
 * becomes one message that says what to do. Shared by `main` and the server's fatal handler.
 */
import { LockstepError, ValidationError, formatIssue } from '../core/errors.ts'

/** Where a command prints its lines: stdout, or a test's array. */
export type Out = (line: string) => void

/** An error in words for the user: the field paths of bad input, the code, or what to do. */
export function describe(e: unknown): string {
  if (e instanceof Error && 'code' in e && e.code === 'EADDRINUSE') {
    return `${e.message}: another program (another Lockstep?) holds that port; stop it or pass --port`
  }
  if (e instanceof ValidationError) return e.issues.map(formatIssue).join('\n  ')
  if (e instanceof LockstepError) return `${e.message} (${e.code})`
  if (
    e instanceof Error &&
    'code' in e &&
    typeof e.code === 'string' &&
    e.code.startsWith('ERR_PARSE_ARGS')
  ) {
    return `${e.message}; see 'lockstep help'`
  }
  return e instanceof Error ? e.message : String(e)
}
