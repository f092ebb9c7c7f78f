/**
 * Sizes in bytes as people write them (`10GiB`, `64MiB`, `1.5GB`, `4096`) and as messages show
 * them. Pure: the CLI parses its flags with it, and the runner words its refusals with it.
 *
 * Invariant: a size parses to a whole, positive, safe number of bytes or not at all; a typo is an
 * error naming the flag, never `NaN` passed on as a limit that nothing ever exceeds.
 */

const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gib: 1024 ** 3,
  t: 1024 ** 4,
  tib: 1024 ** 4,
  kb: 1000,
  mb: 1000 ** 2,
  gb: 1000 ** 3,
  tb: 1000 ** 4,
}

const SIZE = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i

/**
 * Parses a size: a number of bytes, or a number with a unit: `KiB`, `MiB`, `GiB`, `TiB` (powers
 * of 1024; `K`, `M`, `G`, `T` mean the same) or `KB`, `MB`, `GB`, `TB` (powers of 1000). Units
 * are case-insensitive. Throws an error naming `what` (a flag, say) for anything else.
 */
export function parseSize(text: string, what: string): number {
  const m = SIZE.exec(text.trim())
  const unit = m === null ? undefined : UNITS[m[2]!.toLowerCase()]
  const bytes = m === null || unit === undefined ? NaN : Math.floor(Number(m[1]) * unit)
  if (!Number.isSafeInteger(bytes) || bytes <= 0) {
    throw new Error(`${what} takes a size in bytes, such as 4096, 64MiB or 10GiB, got '${text}'`)
  }
  return bytes
}

/** A size for a message: whole binary units when it is one (`10 GiB`), else bytes. */
export function formatSize(bytes: number): string {
  for (const [unit, size] of [
    ['TiB', 1024 ** 4],
    ['GiB', 1024 ** 3],
    ['MiB', 1024 ** 2],
    ['KiB', 1024],
  ] as const) {
    if (bytes >= size && bytes % size === 0) return `${bytes / size} ${unit}`
  }
  return `${bytes} bytes`
}
