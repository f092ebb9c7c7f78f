/**
 * A worker's products: one directory per product under the cache directory, evicted oldest
 * first beyond a size limit, and moved between targets as a tar archive (`archive.ts`) whose
 * SHA-256 is the product's hash. A product over its cap is refused before it is kept.
 */
import { createHash } from 'node:crypto'
import { lstatSync } from 'node:fs'
import type { Hash } from 'node:crypto'
import { mkdir, mkdtemp, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { ServerResponse } from 'node:http'
import { Writable } from 'node:stream'
import { capabilityOfHeader } from '../core/capability.ts'
import type { JobResult } from '../core/model.ts'
import { formatSize } from '../core/sizes.ts'
import { memoryArchive, pack, treeBytes } from './archive.ts'
import type { CapabilityVerdict } from './capability-check.ts'

interface Entry {
  id: string
  bytes: number
  usedAt: number
  /** An empty product (a no-op's) has no directory until someone asks for it. */
  empty: boolean
  /** Its hash, once asked for: a kept product does not change. */
  hash?: string
}

/** Product ids that can be directory names as they are; others are named by a digest. */
const SAFE_ID = /^[A-Za-z0-9._-]{1,200}$/

/** The directory name of a product. */
function dirName(id: string): string {
  return SAFE_ID.test(id) ? id : `h-${createHash('sha256').update(id).digest('hex')}`
}

/** Each product directory says which product it holds, for a cache read back after a restart. */
const ID_FILE = '.product-id'

export class ProductCache {
  readonly dir: string
  private readonly limitBytes: number
  private readonly entries = new Map<string, Entry>()
  /** Products that running jobs read: never evicted while they do. */
  private readonly pins = new Map<string, number>()
  private total = 0

  constructor(dir: string, limitBytes: number) {
    this.dir = dir
    this.limitBytes = limitBytes
  }

  /** Reads what the cache directory already holds: products survive a worker's restart. */
  async open(): Promise<string[]> {
    await mkdir(join(this.dir, 'products'), { recursive: true })
    await mkdir(join(this.dir, 'incoming'), { recursive: true })
    await rm(join(this.dir, 'incoming'), { recursive: true, force: true })
    await mkdir(join(this.dir, 'incoming'), { recursive: true })
    for (const name of await readdir(join(this.dir, 'products'))) {
      const id = await readFile(join(this.dir, 'products', name, ID_FILE), 'utf8').catch(() => name)
      if (dirName(id) !== name) continue
      const info = await stat(this.path(id))
      const bytes = await treeBytes(this.path(id))
      this.entries.set(id, { id, bytes, usedAt: info.mtimeMs, empty: false })
      this.total += bytes
    }
    return [...this.entries.keys()]
  }

  has(id: string): boolean {
    return this.entries.has(id)
  }

  ids(): string[] {
    return [...this.entries.keys()]
  }

  path(id: string): string {
    return join(this.dir, 'products', dirName(id))
  }

  /** A fresh directory to build a product in, on the cache's file system. */
  async scratch(name: string): Promise<string> {
    return mkdtemp(join(this.dir, 'incoming', `${dirName(name).slice(0, 80)}-`))
  }

  /**
   * Moves a built directory into the cache as product `id`; returns the ids evicted to make
   * room. `bytes`: its files' bytes, when the caller has just counted them (`measureProduct`,
   * `unpack`); an id file already there is replaced, and counted once.
   */
  async add(id: string, from: string, bytes?: number): Promise<string[]> {
    const to = this.path(id)
    const idFile = join(from, ID_FILE)
    if (bytes !== undefined) {
      const before = lstatSync(idFile, { throwIfNoEntry: false })?.size ?? 0
      bytes += Buffer.byteLength(id) - before
    }
    await writeFile(idFile, id)
    await rm(to, { recursive: true, force: true })
    await rename(from, to)
    bytes ??= await treeBytes(to)
    const old = this.entries.get(id)
    if (old !== undefined) this.total -= old.bytes
    this.entries.set(id, { id, bytes, usedAt: Date.now(), empty: false })
    this.total += bytes
    return this.evict(id)
  }

  /** Records an empty product without touching the disk: what a no-op makes. */
  addEmpty(id: string): void {
    if (!this.entries.has(id))
      this.entries.set(id, { id, bytes: 0, usedAt: Date.now(), empty: true })
  }

  /** The product's directory, made on first use for an empty product. */
  async materialise(id: string): Promise<string> {
    const e = this.entries.get(id)
    const dir = this.path(id)
    if (e?.empty === true) {
      await mkdir(join(dir, 'out'), { recursive: true })
      await writeFile(join(dir, ID_FILE), id)
      e.empty = false
    }
    return dir
  }

  /** Keeps a product from eviction until {@link unpin}; pins count. */
  pin(id: string): void {
    this.pins.set(id, (this.pins.get(id) ?? 0) + 1)
  }

  unpin(id: string): void {
    const n = (this.pins.get(id) ?? 0) - 1
    if (n <= 0) this.pins.delete(id)
    else this.pins.set(id, n)
  }

  /**
   * The SHA-256 of a product as {@link sendProduct} serves it: the archive of its directory. An
   * empty product is hashed without making its directory.
   */
  async hash(id: string): Promise<string> {
    const e = this.entries.get(id)
    if (e?.hash !== undefined) return e.hash
    const hash = e?.empty === true ? await emptyProductHash(id) : await productHash(this.path(id))
    // Kept only if the product was not replaced meanwhile.
    if (e !== undefined && this.entries.get(id) === e) e.hash = hash
    return hash
  }

  touch(id: string): void {
    const e = this.entries.get(id)
    if (e !== undefined) e.usedAt = Date.now()
  }

  private async evict(keep: string): Promise<string[]> {
    const evicted: string[] = []
    if (this.total <= this.limitBytes) return evicted
    const oldest = [...this.entries.values()].sort((a, b) => a.usedAt - b.usedAt)
    for (const e of oldest) {
      if (this.total <= this.limitBytes) break
      if (e.id === keep || e.bytes === 0 || this.pins.has(e.id)) continue
      await rm(this.path(e.id), { recursive: true, force: true })
      this.entries.delete(e.id)
      this.total -= e.bytes
      evicted.push(e.id)
    }
    return evicted
  }
}

/** The SHA-256 (hex) of a directory's archive, as {@link pack} writes it. */
export async function productHash(dir: string): Promise<string> {
  const hash = createHash('sha256')
  await pack(dir, hashSink(hash))
  return hash.digest('hex')
}

/** The hash of an empty product: the archive of the directory it becomes on first use. */
export async function emptyProductHash(id: string): Promise<string> {
  const content = Buffer.from(id)
  const [before, after] = await emptyArchiveAround(content.length)
  return createHash('sha256').update(before).update(content).update(after).digest('hex')
}

/**
 * An empty product's archive holds its id file's content and nothing else that varies but the
 * content's length: the header before it and the padding, `out/` and end after it are the same
 * for every id of that length. Made once per length, so that hashing an empty product (once
 * per no-op attempt) is one hash over three buffers, in the same turn.
 */
function emptyArchiveAround(length: number): Promise<[Buffer, Buffer]> {
  let parts = emptyArchiveParts.get(length)
  if (parts === undefined) {
    parts = memoryArchive({ [ID_FILE]: 'x'.repeat(length), 'out/': '' }).then((archive) => [
      archive.subarray(0, TAR_BLOCK),
      archive.subarray(TAR_BLOCK + length),
    ])
    emptyArchiveParts.set(length, parts)
  }
  return parts
}

/** A tar header's size: the id file's content starts right after the first. */
const TAR_BLOCK = 512
const emptyArchiveParts = new Map<number, Promise<[Buffer, Buffer]>>()

function hashSink(hash: Hash): Writable {
  return new Writable({
    write(chunk: Buffer, _encoding, done) {
      hash.update(chunk)
      done()
    },
  })
}

/** The largest product a job may leave unless the target says otherwise. @default 10 GiB */
export const DEFAULT_MAX_PRODUCT_BYTES = 10 * 1024 ** 3

/**
 * Measures a product as it would be archived (its files' bytes: `out/`, stdout and stderr) and
 * refuses one over the cap: removes its directory and answers the failed result
 * (`output-too-large`, naming the cap). The walk stops at the cap, so an oversized product
 * costs no more than the cap to find out.
 */
export async function measureProduct(
  dir: string,
  maxBytes = DEFAULT_MAX_PRODUCT_BYTES,
): Promise<{ bytes: number; refused?: JobResult }> {
  const bytes = await treeBytes(dir, maxBytes)
  if (bytes <= maxBytes) return { bytes }
  await rm(dir, { recursive: true, force: true })
  return {
    bytes,
    refused: {
      ok: false,
      reason: 'output-too-large',
      message: `the product (out/, stdout and stderr) holds more than ${formatSize(maxBytes)}, the cap on a product (--max-product-bytes)`,
    },
  }
}

/**
 * Answers a peer's request for a product: the archive, 404 for a product this target does not
 * hold. When a worker token is set the caller presents it (the scheduler's relay does) or a
 * capability for this product that `checkCapability` accepts (a peer does); anything else is a
 * 401 or 403 with the code of what was wrong.
 */
export async function sendProduct(
  cache: ProductCache,
  id: string,
  authorization: string | undefined,
  token: string | undefined,
  res: ServerResponse,
  checkCapability?: (capability: string, productId: string) => Promise<CapabilityVerdict>,
): Promise<void> {
  const fail = (status: number, code: string, message: string) => {
    res.writeHead(status, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ error: { code, message } }))
  }
  if (token !== undefined && authorization !== `Bearer ${token}`) {
    const capability = capabilityOfHeader(authorization)
    if (capability === undefined || checkCapability === undefined) {
      fail(401, 'UNAUTHORIZED', 'a worker token or a capability is needed to fetch products')
      return
    }
    const verdict = await checkCapability(capability, id)
    if (!verdict.ok) {
      fail(verdict.status, verdict.code, verdict.message)
      return
    }
  }
  if (!cache.has(id)) {
    fail(404, 'PRODUCT_NOT_FOUND', `no product ${id} here`)
    return
  }
  cache.touch(id)
  res.writeHead(200, { 'content-type': 'application/octet-stream' })
  await pack(await cache.materialise(id), res)
}
