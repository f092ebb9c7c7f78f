/**
 * Ends a test run with one plain line, `tests: N passed, N failed, N skipped`, that any CI can
 * read whatever runner it knows.
 */
import type { RunnerTask as Task, RunnerTestFile as File } from 'vitest'
import type { Reporter } from 'vitest/node'

export default class SummaryReporter implements Reporter {
  onFinished(files: File[] = [], errors: unknown[] = []): void {
    const count = { passed: 0, failed: 0, skipped: 0 }
    const walk = (task: Task): void => {
      if (task.type === 'suite') {
        // A file that failed to load has no tests, and counts as one failure.
        if (task.tasks.length === 0 && task.result?.state === 'fail') count.failed++
        task.tasks.forEach(walk)
        return
      }
      const state = task.result?.state
      if (state === 'pass') count.passed++
      else if (state === 'fail') count.failed++
      else count.skipped++
    }
    files.forEach(walk)
    count.failed += errors.length
    setImmediate(() => {
      process.stdout.write(
        `\ntests: ${count.passed} passed, ${count.failed} failed, ${count.skipped} skipped\n`,
      )
    })
  }
}
