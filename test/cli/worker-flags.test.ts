/**
 * `lockstep worker`'s limits on a job: `--max-stdout-bytes` and `--max-stderr-bytes` are whole
 * numbers of bytes, at least 1, and `--kill-grace-ms` a whole number of milliseconds; anything
 * else stops the command before it starts a worker, naming the flag.
 */
import { describe, expect, it } from 'vitest'
import { worker } from '../../src/cli/process-commands.ts'

const base = ['--server', 'http://127.0.0.1:1', '--id', 'w1']

describe('lockstep worker limits', () => {
  it.each([
    ['--max-stdout-bytes', '0', 'at least 1'],
    ['--max-stdout-bytes', '64MiB', 'at least 1'],
    ['--max-stderr-bytes', '-1', 'at least 1'],
    ['--max-stderr-bytes', '1.5', 'at least 1'],
    ['--kill-grace-ms', 'soon', 'at least 0'],
  ])('refuses %s %s', async (flag, value, expected) => {
    await expect(worker([...base, `${flag}=${value}`], () => {})).rejects.toThrow(
      `${flag} takes a whole number of ${expected}, got '${value}'`,
    )
  })
})
