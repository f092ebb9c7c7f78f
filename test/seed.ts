/**
 * Seeded randomness for the tests that time kills: the seed comes from `LOCKSTEP_TEST_SEED` or
 * is drawn, and is logged, so that a failing run can be replayed with the same choices.
 */
import { randomInt } from 'node:crypto'

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

/** mulberry32: small, fast, and the same on every machine. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

export function seeded(label: string): Seeded {
  const given = process.env.LOCKSTEP_TEST_SEED
  const seed = given !== undefined && given !== '' ? Number(given) : randomInt(2 ** 31)
  if (!Number.isSafeInteger(seed)) throw new Error(`LOCKSTEP_TEST_SEED=${given} is not an integer`)
  const random = mulberry32(seed)
  const log = (line: string) => process.stderr.write(`${label} [seed ${seed}]: ${line}\n`)
  log(`replay with LOCKSTEP_TEST_SEED=${seed}`)
  return {
    seed,
    random,
    int: (min, max) => min + Math.floor(random() * (max - min + 1)),
    log,
  }
}
