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
        // A suite's own failure counts once, beside its tests: a beforeAll or afterAll hook
        // that threw (its tests may all have passed), or a file that failed to load (no tests).
        const own = (task.result?.errors?.length ?? 0) > 0
        if (own || (task.tasks.length === 0 && task.result?.state === 'fail')) count.failed++
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
