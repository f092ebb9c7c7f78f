/**
 * One attempt from start to product, wherever it runs (a worker agent or the initiator inside
 * the scheduler): a fresh job directory, inputs fetched from the targets that hold them and
 * given as read-only copies under `inputs/<name>/`, the job run, and its `out/` (with stdout and
 * stderr) kept as the product.
 *
 * Invariant: no job changes a product in the cache. An input is a copy (`job-dir.ts`), and a
 * product is kept only after the job's whole process group has ended (`exec-job.ts`).
 */
import { mkdir, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { CAPABILITY_SCHEME } from '../core/capability.ts'
import { LockstepError } from '../core/errors.ts'
import type { Assignment, JobInput } from '../core/protocol.ts'
import type { JobResult } from '../core/model.ts'
import type { ProductCache } from './products.ts'
import { unpack } from './archive.ts'
import { measureProduct, productHash } from './products.ts'
import type { ExecLimits } from './exec-job.ts'
import { giveInput, removeJobDir } from './job-dir.ts'
import { runJob } from './run-job.ts'
import type { RunningJob } from './run-job.ts'

/** A target holding a product, and where it serves it. */
export interface Holder {
  target: string
  url?: string
}

export interface ExecuteOptions {
  cache: ProductCache
  /** Where job directories are made. */
  jobsDir: string
  /** This target's id: its own products are never fetched. */
  self: string
  /** The worker token peers ask for. */
  token?: string
  data: Record<string, string>
  initiator?: boolean
  secrets?: string
  /** Who holds a product. */
  locate(productId: string): Promise<Holder[]>
  /** The scheduler's relay (`…/v1/products`), tried when no holder can be reached. */
  relay?: string
  /** Called once the job runs, so that it can be cancelled. */
  started?(job: RunningJob): void
  /** The limits an `exec` job runs under (kill grace, output caps). @default each default */
  limits?: ExecLimits
  /** A product larger than this fails its attempt (`output-too-large`). @default 10 GiB */
  maxProductBytes?: number
  /** A fetched product that unpacks to more than this is refused. @default 10 GiB */
  maxInputBytes?: number
}

/** What an attempt did: its result, and the products the cache gained and lost. */
export interface Executed {
  result: JobResult
  added: string[]
  removed: string[]
}

export async function execute(a: Assignment, o: ExecuteOptions): Promise<Executed> {
  const out: Executed = { result: { ok: true }, added: [], removed: [] }
  if ('builtin' in a.op && a.op.builtin === 'noop' && a.inputs.length === 0) {
    // Nothing to run and nothing to keep: no directory, no disk.
    o.cache.addEmpty(a.productId)
    out.result.productHash = await o.cache.hash(a.productId)
    return out
  }
  const dir = join(o.jobsDir, `${a.jobId}-${a.attempt}`)
  await removeJobDir(dir)
  await mkdir(join(dir, 'inputs'), { recursive: true })
  // No input is evicted between its fetch and its copy into the job directory.
  for (const input of a.inputs) o.cache.pin(input.productId)
  let pinned = true
  const unpin = () => {
    if (pinned) for (const input of a.inputs) o.cache.unpin(input.productId)
    pinned = false
  }
  try {
    try {
      for (const input of a.inputs) {
        if (!o.cache.has(input.productId) || (await stale(input, o.cache))) {
          const fetched = await fetchOnce(input, o)
          out.removed.push(...fetched.evicted)
          if (fetched.first) out.added.push(input.productId)
        } else if (input.hash !== undefined && !input.holders.includes(o.self)) {
          // A kept copy, checked against the hash just above, that the scheduler does not count
          // (it forgot this target's cache when it was lost): announced like a fetched one.
          out.added.push(input.productId)
        }
        o.cache.touch(input.productId)
        const product = await o.cache.materialise(input.productId)
        await giveInput(product, join(dir, 'inputs', input.name))
      }
    } catch (e) {
      out.result = { ok: false, reason: 'input-unavailable', message: (e as Error).message }
      return out
    }
    // The job has its own copies now: the cache may evict the originals.
    unpin()
    const job = runJob(a, {
      dir,
      data: o.data,
      initiator: o.initiator,
      secrets: o.secrets,
      limits: o.limits,
    })
    o.started?.(job)
    out.result = await job.result
    if (out.result.ok) {
      const product = await o.cache.scratch(a.productId)
      await rename(join(dir, 'out'), join(product, 'out'))
      for (const stream of ['stdout', 'stderr']) {
        await rename(join(dir, stream), join(product, stream)).catch(() =>
          writeFile(join(product, stream), ''),
        )
      }
      const { bytes, refused } = await measureProduct(product, o.maxProductBytes)
      if (refused !== undefined) return { ...out, result: refused }
      out.removed.push(...(await o.cache.add(a.productId, product, bytes)))
      // Hashed as it is kept, and so as it is served: what consumers will check their copy by.
      out.result.productHash = await o.cache.hash(a.productId)
    }
    return out
  } finally {
    unpin()
    await removeJobDir(dir)
  }
}

/**
 * Fetches a product a target holds into the cache, as a job's input is fetched (one fetch per
 * product at a time, the holders first, then the relay): the one way products move into a cache.
 * Answers what the cache gained (nothing when a fetch already under way brings it) and evicted.
 */
export async function fetchInput(
  productId: string,
  capability: string | undefined,
  o: ExecuteOptions,
  hash?: string,
): Promise<{ added: string[]; removed: string[] }> {
  const fetched = await fetchOnce({ productId, capability, hash }, o)
  return { added: fetched.first ? [productId] : [], removed: fetched.evicted }
}

/** Fetches in flight, by cache and product: jobs that need one input at once fetch it once. */
const fetching = new WeakMap<ProductCache, Map<string, Promise<string[]>>>()

/** What a fetch needs of an input: its product, the capability to show, the hash to check. */
type Wanted = Pick<JobInput, 'productId' | 'capability' | 'hash'>

async function fetchOnce(
  input: Wanted,
  o: ExecuteOptions,
): Promise<{ evicted: string[]; first: boolean }> {
  const productId = input.productId
  let inFlight = fetching.get(o.cache)
  if (inFlight === undefined)
    fetching.set(o.cache, (inFlight = new Map<string, Promise<string[]>>()))
  const pending = inFlight.get(productId)
  if (pending !== undefined) {
    await pending
    return { evicted: [], first: false }
  }
  const fetch = fetchProduct(input, o)
  inFlight.set(productId, fetch)
  try {
    return { evicted: await fetch, first: true }
  } finally {
    inFlight.delete(productId)
  }
}

/**
 * Fetches a product from a target that holds it into the cache; returns the ids evicted. A peer
 * is shown the input's capability, the scheduler (its relay, and the targets it runs inside it)
 * the token: with a token per worker, a peer would refuse this worker's own. A copy whose hash is
 * not the input's is refused (PRODUCT_CORRUPT) and the next source is tried: only a verified copy
 * enters the cache, so only such a copy is ever served on or announced.
 */
async function fetchProduct(input: Wanted, o: ExecuteOptions): Promise<string[]> {
  const { productId, capability, hash } = input
  const errors: string[] = []
  const holders = (await o.locate(productId)).filter(
    (h) => h.url !== undefined && h.target !== o.self,
  )
  const bearer = o.token === undefined ? undefined : `Bearer ${o.token}`
  const scheduler = o.relay === undefined ? undefined : originOf(o.relay)
  const sources = holders.map((h) => ({
    name: h.target,
    url: `${h.url}/products`,
    authorization:
      capability === undefined || originOf(h.url!) === scheduler
        ? bearer
        : `${CAPABILITY_SCHEME} ${capability}`,
  }))
  if (o.relay !== undefined) {
    sources.push({ name: 'the scheduler', url: o.relay, authorization: bearer })
  }
  for (const source of sources) {
    try {
      const path = source.name === 'the scheduler' ? '/content' : ''
      const res = await fetch(`${source.url}/${encodeURIComponent(productId)}${path}`, {
        headers: source.authorization === undefined ? {} : { authorization: source.authorization },
      })
      if (!res.ok || res.body === null) throw new Error(`HTTP ${res.status}`)
      const dir = await o.cache.scratch(productId)
      const bytes = await unpack(Readable.fromWeb(res.body as never), dir, {
        maxBytes: o.maxInputBytes,
        capName: '--max-input-bytes',
      })
      await verify(productId, hash, dir)
      return await o.cache.add(productId, dir, bytes)
    } catch (e) {
      errors.push(`${source.name}: ${(e as Error).message}`)
    }
  }
  throw new Error(
    `could not fetch product ${productId} (${errors.join('; ') || 'no holder serves it'})`,
  )
}

function originOf(url: string): string | undefined {
  try {
    return new URL(url).origin
  } catch {
    return undefined
  }
}

/**
 * A copy kept from before (a product made again under its cache key since) that is not the
 * product the job reads now: it is fetched again.
 */
async function stale(input: JobInput, cache: ProductCache): Promise<boolean> {
  return input.hash !== undefined && (await cache.hash(input.productId)) !== input.hash
}

/** Refuses (and removes) a fetched copy whose hash is not the one its maker reported. */
async function verify(productId: string, hash: string | undefined, dir: string): Promise<void> {
  if (hash === undefined) return
  // The copy as it landed on disk, hashed as it would be served: what the job will read.
  const got = await productHash(dir)
  if (got === hash) return
  await rm(dir, { recursive: true, force: true })
  throw new LockstepError(
    'PRODUCT_CORRUPT',
    `PRODUCT_CORRUPT: product ${productId} has hash ${got}, not ${hash}`,
  )
}
