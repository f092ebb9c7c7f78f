/**
 * Identities are UUIDv7 strings (RFC 9562): 48 bits of Unix milliseconds, then random bits, so
 * ids sort by creation time. Each converts to 16 bytes and back, the form the store keeps.
 */

/** A UUIDv7 in its canonical lower-case text form, e.g. `0190b6a4-7c1e-7d3a-9b2f-1c2d3e4f5a6b`. */
export type Id = string

/** Fills a buffer with random bytes. */
export type RandomSource = (bytes: Uint8Array) => void

const HEX: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'))
const ID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

const defaultRandom: RandomSource = (bytes) => {
  globalThis.crypto.getRandomValues(bytes)
}

/**
 * Makes UUIDv7 ids that are strictly increasing within one generator, also within one
 * millisecond: the 12 bits after the version count up (RFC 9562, method 1), and when they run
 * out the timestamp borrows a millisecond from the future.
 */
export class IdGenerator {
  private lastMs = -1
  private counter = 0
  private readonly pool = new Uint8Array(4096)
  private poolAt = 4096
  private readonly random: RandomSource

  constructor(random: RandomSource = defaultRandom) {
    this.random = random
  }

  /** A new id stamped with `nowMs`. */
  next(nowMs: number): Id {
    let ms = Math.max(Math.floor(nowMs), this.lastMs)
    if (ms === this.lastMs) {
      this.counter++
      if (this.counter > 0xfff) {
        ms++
        this.counter = this.randomCounter()
      }
    } else {
      this.counter = this.randomCounter()
    }
    this.lastMs = ms
    const b = this.take(8)
    const hi = Math.floor(ms / 0x10000)
    const lo = ms % 0x10000
    return (
      HEX[(hi >>> 24) & 0xff]! +
      HEX[(hi >>> 16) & 0xff]! +
      HEX[(hi >>> 8) & 0xff]! +
      HEX[hi & 0xff]! +
      '-' +
      HEX[(lo >>> 8) & 0xff]! +
      HEX[lo & 0xff]! +
      '-' +
      HEX[0x70 | (this.counter >>> 8)]! +
      HEX[this.counter & 0xff]! +
      '-' +
      HEX[0x80 | (b[0]! & 0x3f)]! +
      HEX[b[1]!]! +
      '-' +
      HEX[b[2]!]! +
      HEX[b[3]!]! +
      HEX[b[4]!]! +
      HEX[b[5]!]! +
      HEX[b[6]!]! +
      HEX[b[7]!]!
    )
  }

  // Half the counter space is left for ids made in the same millisecond.
  private randomCounter(): number {
    const b = this.take(2)
    return ((b[0]! << 8) | b[1]!) & 0x7ff
  }

  private take(n: number): Uint8Array {
    if (this.poolAt + n > this.pool.length) {
      this.random(this.pool)
      this.poolAt = 0
    }
    const out = this.pool.subarray(this.poolAt, this.poolAt + n)
    this.poolAt += n
    return out
  }
}

/** True when `value` is a UUID in canonical lower-case form. */
export function isId(value: unknown): value is Id {
  return typeof value === 'string' && ID_PATTERN.test(value)
}

/** The value of each hex digit by character code; -1 for every other character. */
const NIBBLE: Int8Array = (() => {
  const t = new Int8Array(128).fill(-1)
  for (let i = 0; i < 16; i++) t['0123456789abcdef'.charCodeAt(i)] = i
  return t
})()

/** The 16 bytes of an id, as stored in a binary column. Checks the form as it goes. */
export function idToBytes(id: Id): Uint8Array {
  if (
    typeof id !== 'string' ||
    id.length !== 36 ||
    id.charCodeAt(8) !== 45 ||
    id.charCodeAt(13) !== 45 ||
    id.charCodeAt(18) !== 45 ||
    id.charCodeAt(23) !== 45
  ) {
    throw new TypeError(`not a UUID: ${JSON.stringify(id)}`)
  }
  const out = new Uint8Array(16)
  let j = 0
  for (let i = 0; i < 36; i += 2) {
    if (i === 8 || i === 13 || i === 18 || i === 23) i++
    const hi = NIBBLE[id.charCodeAt(i)] ?? -1
    const lo = NIBBLE[id.charCodeAt(i + 1)] ?? -1
    if ((hi | lo) < 0) throw new TypeError(`not a UUID: ${JSON.stringify(id)}`)
    out[j++] = (hi << 4) | lo
  }
  return out
}

/** The id whose bytes these are; the inverse of {@link idToBytes}. */
export function bytesToId(bytes: Uint8Array): Id {
  if (bytes.length !== 16) throw new TypeError(`an id has 16 bytes, got ${bytes.length}`)
  let s = ''
  for (let i = 0; i < 16; i++) {
    if (i === 4 || i === 6 || i === 8 || i === 10) s += '-'
    s += HEX[bytes[i]!]!
  }
  return s
}

/** The Unix milliseconds stamped into a UUIDv7. */
export function idTime(id: Id): number {
  return parseInt(id.slice(0, 8) + id.slice(9, 13), 16)
}
