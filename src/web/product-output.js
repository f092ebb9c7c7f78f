/**
 * The end of a job's stdout and stderr, read from its product as the scheduler relays it
 * (`GET /v1/products/:id/content`, the same bytes `lockstep logs` reads). A product travels as
 * a ustar archive in name order, so `stderr` and `stdout` come after the files of `out/`: the
 * archive is read as a stream, header by header, keeping only the last bytes of those two
 * entries, and the read stops once both are in, or after READ_LIMIT bytes of a large product.
 *
 * The archive reader is these few lines rather than a library: tar libraries for the browser
 * expect Node's streams, and the archives Lockstep writes are plain ustar (no sparse files, no
 * links; pax headers only for names longer than 100 bytes, which `stdout` and `stderr` are not).
 */
import { ApiError, authHeaders } from './api.js'

/** The most of each stream shown. */
const TAIL = 16 * 1024
/** The most of a product read to find them. */
const READ_LIMIT = 64 * 1024 * 1024

/**
 * @param {string} productId
 * @param {AbortSignal} [signal]
 * @returns {Promise<{ stdout: string, stderr: string, found: boolean }>}
 */
export async function readOutput(productId, signal) {
  const res = await fetch(`/v1/products/${encodeURIComponent(productId)}/content`, {
    headers: authHeaders(),
    signal,
  })
  if (!res.ok || res.body === null) {
    const body = await res.json().catch(() => ({}))
    throw new ApiError(
      res.status,
      body?.error?.code ?? 'INTERNAL',
      body?.error?.message ?? res.statusText,
    )
  }
  const reader = res.body.getReader()
  /** @type {Record<string, Uint8Array>} */
  const kept = {}
  let buffer = new Uint8Array(0)
  let read = 0
  /** The entry being read: its name, the bytes of it still to come, and the padding after. */
  let entry = /** @type {{ name: string, left: number, pad: number } | null} */ (null)
  const take = (/** @type {number} */ n) => {
    const out = buffer.subarray(0, n)
    buffer = buffer.subarray(n)
    return out
  }
  for (;;) {
    while (true) {
      if (entry !== null) {
        const n = Math.min(entry.left, buffer.length)
        if (n > 0) {
          const chunk = take(n)
          entry.left -= n
          if (entry.name === 'stdout' || entry.name === 'stderr') {
            kept[entry.name] = tail(kept[entry.name], chunk)
          }
        }
        if (entry.left > 0) break
        if (buffer.length < entry.pad) break
        take(entry.pad)
        entry = null
        continue
      }
      if (buffer.length < 512) break
      const header = take(512)
      if (header.every((b) => b === 0)) break
      const size = parseInt(text(header.subarray(124, 136)).trim() || '0', 8)
      entry = { name: text(header.subarray(0, 100)), left: size, pad: (512 - (size % 512)) % 512 }
    }
    if ('stdout' in kept && 'stderr' in kept && entry === null) break
    if (read > READ_LIMIT) break
    const { done, value } = await reader.read()
    if (done) break
    read += value.length
    const joined = new Uint8Array(buffer.length + value.length)
    joined.set(buffer)
    joined.set(value, buffer.length)
    buffer = joined
  }
  await reader.cancel().catch(() => {})
  const decode = (/** @type {Uint8Array | undefined} */ b) =>
    b === undefined ? '' : new TextDecoder().decode(b)
  return { stdout: decode(kept.stdout), stderr: decode(kept.stderr), found: 'stdout' in kept }
}

/** The last TAIL bytes of what was kept and a new chunk. */
function tail(/** @type {Uint8Array | undefined} */ kept, /** @type {Uint8Array} */ chunk) {
  const before = kept ?? new Uint8Array(0)
  const all = new Uint8Array(before.length + chunk.length)
  all.set(before)
  all.set(chunk, before.length)
  return all.length > TAIL ? all.slice(all.length - TAIL) : all
}

/** A NUL-terminated header field as text. */
function text(/** @type {Uint8Array} */ field) {
  const end = field.indexOf(0)
  return new TextDecoder().decode(end === -1 ? field : field.subarray(0, end))
}
