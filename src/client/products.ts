/**
 * Products on the workbench's side: an order's products downloaded to a directory, one folder
 * per job; one product read in a temporary folder (a job's output, an order's result). Every
 * product comes relayed by the scheduler as its archive, and is unpacked under the archive's
 * rules (`src/runner/archive.ts`): a refused archive leaves no partial folder.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { LockstepError, ValidationError } from '../core/errors.ts'
import { ArchiveRefusedError, DEFAULT_MAX_UNPACKED_BYTES, unpack } from '../runner/archive.ts'
import type { OrderProducts } from './types.ts'

/** What products are read through: the client's two calls. */
export interface ProductSource {
  products(orderId: string): Promise<OrderProducts>
  productContent(productId: string): Promise<AsyncIterable<Uint8Array>>
}

/** How {@link downloadProducts} downloads. */
export interface DownloadOptions {
  /** The most bytes one product may unpack to. @default 10 GiB */
  maxBytes?: number
  /** The cap's name in a refusal (the CLI's `--max-bytes`). @default 'maxBytes' */
  capName?: string
}

/** What a download brought. */
export interface Download {
  /** The directory, absolute. */
  dir: string
  /** The jobs whose products are in it, one folder each, by job name. */
  jobs: string[]
  /**
   * Jobs whose products no live target serves any more: once an order's workers are gone, the
   * scheduler still holds its final products (its last jobs'), not the ones between.
   */
  missing: string[]
}

/**
 * Downloads an order's products into `dir`, one folder per job named after it. A product that
 * would unpack to more than `maxBytes` is LIMIT_EXCEEDED, one whose archive is refused (a path
 * outside its folder, a link, a device, cut short) PRODUCT_CORRUPT: the download stops there,
 * naming the product and the entry. A folder that already holds files is VALIDATION_FAILED.
 */
export async function downloadProducts(
  source: ProductSource,
  orderId: string,
  dir: string,
  options: DownloadOptions = {},
): Promise<Download> {
  const to = resolve(dir)
  const jobs: string[] = []
  const missing: string[] = []
  for (const p of await source.products(orderId)) {
    // A worker killed outside its lease is listed until the lease ends: the scheduler's answer
    // that nobody serves the product counts as no holder.
    if (p.holders.length === 0) {
      missing.push(p.name)
      continue
    }
    let content: AsyncIterable<Uint8Array>
    try {
      content = await source.productContent(p.productId)
    } catch (e) {
      if (!(e instanceof LockstepError && e.code === 'PRODUCT_NOT_FOUND')) throw e
      missing.push(p.name)
      continue
    }
    await unpackProduct(content, join(to, p.name), `product ${p.name} (${p.productId})`, options)
    jobs.push(p.name)
  }
  return { dir: to, jobs, missing }
}

/**
 * Unpacks a product into a temporary folder, reads it with `read`, and removes the folder
 * whatever happens.
 */
export async function readProduct<T>(
  source: Pick<ProductSource, 'productContent'>,
  productId: string,
  read: (dir: string) => Promise<T>,
): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'lockstep-product-'))
  try {
    const into = join(dir, 'product')
    await unpackProduct(await source.productContent(productId), into, `product ${productId}`)
    return await read(into)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

/** A file of a product's folder as text; undefined when the product has none. */
export function readText(dir: string, ...path: string[]): Promise<string | undefined> {
  return readFile(join(dir, ...path), 'utf8').catch((e: unknown) => {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw e
  })
}

/** Unpacks one product, its failures as errors of the catalogue that name it. */
async function unpackProduct(
  content: AsyncIterable<Uint8Array>,
  dir: string,
  what: string,
  options: DownloadOptions = {},
): Promise<void> {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_UNPACKED_BYTES
  try {
    await unpack(content, dir, { maxBytes, capName: options.capName ?? 'maxBytes' })
  } catch (e) {
    const message = `${what}: ${(e as Error).message}`
    if (e instanceof ArchiveRefusedError) {
      throw new LockstepError(
        e.why.includes('the cap') ? 'LIMIT_EXCEEDED' : 'PRODUCT_CORRUPT',
        message,
      )
    }
    if (e instanceof LockstepError) throw e
    // The folder cannot take it: it holds files already, or the file system refuses.
    if (/already holds files/.test(message) || (e as NodeJS.ErrnoException).syscall !== undefined) {
      throw new ValidationError([{ path: 'dir', message }])
    }
    if (/ended early/.test(message)) throw new LockstepError('PRODUCT_CORRUPT', message)
    // The relay's stream broke off: the scheduler or the network went away.
    throw new LockstepError('UNAVAILABLE', message)
  }
}
