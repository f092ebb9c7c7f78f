/**
 * A long-running process keeps serving after a promise fails with no handler, and stops with
 * exit code 70 after an uncaught exception, saying why either way.
 */
import { execFile } from 'node:child_process'
import { describe, expect, it } from 'vitest'

/** Runs a script that installs the guards and then does `then`; answers how it ended. */
function run(then: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const script = `
    const { guardProcess } = await import('./src/cli/process-guards.ts')
    guardProcess('lockstep test')
    ${then}
  `
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', script],
      { timeout: 20_000 },
      (error, stdout, stderr) =>
        resolve({
          code: error === null ? 0 : ((error as { code?: number }).code ?? null),
          stdout,
          stderr,
        }),
    )
  })
}

describe('process guards', () => {
  it('log a promise that failed with no handler, and keep serving', async () => {
    const r = await run(`
      void Promise.reject(new Error('the relay lost its peer'))
      setTimeout(() => console.log('still serving'), 50)
    `)
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('still serving')
    expect(r.stderr).toMatch(
      /lockstep test: a promise failed with no handler \(still serving\): Error: the relay lost its peer/,
    )
  })

  it('log an uncaught exception and stop with code 70, for a restart to carry on', async () => {
    const r = await run(`
      setTimeout(() => { throw new Error('broken invariant') }, 10)
      setTimeout(() => console.log('still serving'), 500)
    `)
    expect(r.code).toBe(70)
    expect(r.stdout).not.toContain('still serving')
    expect(r.stderr).toMatch(/an uncaught exception: Error: broken invariant/)
    expect(r.stderr).toMatch(/stopping \(exit 70\)/)
  })
})
