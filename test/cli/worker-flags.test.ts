/**
 * `lockstep worker`'s limits on a job: `--max-stdout-bytes` and `--max-stderr-bytes` are sizes
 * (`4096`, `64MiB`), and `--kill-grace-ms` a whole number of milliseconds; anything else stops
 * the command before it starts a worker, naming the flag.
 */
import { describe, expect, it } from 'vitest'
import { worker } from '../../src/cli/process-commands.ts'

const base = ['--server', 'http://127.0.0.1:1', '--id', 'w1']

describe('lockstep worker limits', () => {
  it.each([
    ['--max-stdout-bytes', '0'],
    ['--max-stdout-bytes', '64 parsecs'],
    ['--max-stderr-bytes', '-1'],
    ['--max-stderr-bytes', 'lots'],
  ])('refuses %s %s', async (flag, value) => {
    await expect(worker([...base, `${flag}=${value}`], () => {})).rejects.toThrow(
      `${flag} takes a size in bytes, such as 4096, 64MiB or 10GiB, got '${value}'`,
    )
  })

  it('refuses --kill-grace-ms that is not a whole number of milliseconds', async () => {
    await expect(worker([...base, '--kill-grace-ms=soon'], () => {})).rejects.toThrow(
      "--kill-grace-ms takes a whole number of at least 0, got 'soon'",
    )
  })
})
