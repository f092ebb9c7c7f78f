/**
 * Seeded random numbers: the same sequence for the same seed on every machine, so a run that
 * draws from it (a benchmark, a simulation, a test that times its faults) can be replayed. The
 * engine takes any `() => number` for its backoff jitter; this is one that can be replayed.
 */

/** mulberry32: small, fast, numbers in [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
