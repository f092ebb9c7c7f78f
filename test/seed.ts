/**
 * Seeded randomness for the tests that time kills: the seed comes from `LOCKSTEP_TEST_SEED` or
 * is drawn, and is logged, so that a failing run can be replayed with the same choices.
 */
import { randomInt } from 'node:crypto'
import { seededRandom } from '../src/core/random.ts'

/** Random numbers from one logged seed. */
export interface Seeded {
  readonly seed: number
  /** In [0, 1). */
  random(): number
  /** An integer in [min, max]. */
  int(min: number, max: number): number
  /** Writes a line to stderr, prefixed with the label and the seed. */
  log(line: string): void
}

export function seeded(label: string): Seeded {
  const given = process.env.LOCKSTEP_TEST_SEED
  const seed = given !== undefined && given !== '' ? Number(given) : randomInt(2 ** 31)
  if (!Number.isSafeInteger(seed)) throw new Error(`LOCKSTEP_TEST_SEED=${given} is not an integer`)
  const random = seededRandom(seed)
  const log = (line: string) => process.stderr.write(`${label} [seed ${seed}]: ${line}\n`)
  log(`replay with LOCKSTEP_TEST_SEED=${seed}`)
  return {
    seed,
    random,
    int: (min, max) => min + Math.floor(random() * (max - min + 1)),
    log,
  }
}
