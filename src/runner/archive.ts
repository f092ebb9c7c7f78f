/**
 * The archive a product travels as between targets, to the scheduler and to the CLI: a tar
 * (ustar, written and read by tar-stream) of the product's directory.
 *
 * Invariants:
 * - Deterministic. The same tree packs to the same bytes on every target, whatever its file
 *   system, its clock or its user: entries in name order at every level, mtime 0, uid and gid 0,
 *   no user or group names, mode 0755 for directories and for files with any execute bit, 0644
 *   for other files. A product's hash is the hash of its archive, so a copy is checked anywhere.
 * - Bounded memory. Packing streams each file into the output and waits when the reader is slow;
 *   unpacking pipes each entry to its file. Neither holds a whole file, let alone a product.
 * - Unpacking holds to what a product can be: files and directories under the target directory.
 *   An absolute path, a `..` component, a link, a device or a FIFO, a duplicate entry, or more
 *   bytes in all than the cap refuse the whole archive, naming the entry; what was unpacked so
 *   far is removed, and the target directory appears only once every entry is in.
 */
import { createReadStream, createWriteStream, lstatSync, readFileSync, readdirSync } from 'node:fs'
import { chmod, mkdir, mkdtemp, rename, rm } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { Readable, Transform } from 'node:stream'
import type { Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import tar from 'tar-stream'
import type { Header, Pack } from 'tar-stream'
import { formatSize } from '../core/sizes.ts'

/** The most an archive may unpack to unless the caller says otherwise. @default 10 GiB */
export const DEFAULT_MAX_UNPACKED_BYTES = 10 * 1024 ** 3

/** One thing in a tree, as it is archived. */
export interface TreeEntry {
  /** Its path from the root, `/`-separated. */
  path: string
  type: 'file' | 'directory'
  /** Bytes, 0 for a directory. */
  size: number
  /** Whether any execute bit is set (files only). */
  executable: boolean
}

/**
 * What a tree holds, depth first with names in code-unit order at every level: the order it is
 * archived in. Only files and directories are archived; a link, a socket or a FIFO is left out.
 *
 * The walk reads the directory and each file's size directly, not through the thread pool: a
 * product is mostly small files, and a pooled call costs ten times the system call it makes.
 * It lets the event loop run between every {@link WALK_SLICE} entries, so a tree of a million
 * files never holds it for long.
 */
export async function* walkTree(root: string, prefix = ''): AsyncGenerator<TreeEntry> {
  const entries = readdirSync(join(root, prefix), { withFileTypes: true })
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  for (const entry of entries) {
    if (++walked % WALK_SLICE === 0) await new Promise((resolve) => setImmediate(resolve))
    const path = prefix === '' ? entry.name : `${prefix}/${entry.name}`
    if (entry.isDirectory()) {
      yield { path, type: 'directory', size: 0, executable: false }
      yield* walkTree(root, path)
    } else if (entry.isFile()) {
      const info = lstatSync(join(root, path))
      yield { path, type: 'file', size: info.size, executable: (info.mode & 0o111) !== 0 }
    }
  }
}

/** Entries a walk reads before it lets the event loop run. */
const WALK_SLICE = 256
let walked = 0

/**
 * The bytes of the files of a tree, counted as it is archived; stops counting once past
 * `stopAbove` (the answer is then just over it), so an oversized tree is not walked to its end.
 */
export async function treeBytes(root: string, stopAbove = Infinity): Promise<number> {
  let total = 0
  for await (const entry of walkTree(root)) {
    total += entry.size
    if (total > stopAbove) break
  }
  return total
}

/** The fixed header of an entry: nothing of the file system but its path, kind, size and x bit. */
function headerOf(entry: TreeEntry): Header {
  const directory = entry.type === 'directory'
  return {
    name: directory ? `${entry.path}/` : entry.path,
    type: entry.type,
    size: entry.size,
    mode: directory || entry.executable ? 0o755 : 0o644,
    mtime: new Date(0),
    uid: 0,
    gid: 0,
    uname: '',
    gname: '',
    linkname: '',
    devmajor: 0,
    devminor: 0,
  }
}

/**
 * Archives `entries` into `out`, each file's bytes read from `read` as it is written. Resolves
 * once `out` has taken the whole archive; rejects, with `out` destroyed, on any failure.
 */
async function packEntries(
  entries: AsyncIterable<TreeEntry>,
  read: (entry: TreeEntry) => Readable | Buffer,
  out: Writable,
): Promise<void> {
  const archive: Pack = tar.pack()
  let sendFailure: Error | undefined
  const sending = pipeline(archive, out).catch((e: unknown) => {
    sendFailure = e as Error
  })
  try {
    for await (const entry of entries) {
      if (entry.type === 'directory') {
        // A directory has no body: its entry ends as it is written.
        await new Promise<void>((resolve, reject) =>
          archive.entry(headerOf(entry), (e) => (e ? reject(e) : resolve())),
        )
      } else {
        const body = read(entry)
        if (body instanceof Readable) await pipeline(body, archive.entry(headerOf(entry)))
        else {
          await new Promise<void>((resolve, reject) =>
            archive.entry(headerOf(entry), body, (e) => (e ? reject(e) : resolve())),
          )
        }
      }
    }
    archive.finalize()
  } catch (e) {
    archive.destroy(e as Error)
    await sending
    throw sendFailure ?? e
  }
  await sending
  if (sendFailure !== undefined) throw sendFailure
}

/**
 * Files up to this size are read whole and written as one entry; larger ones are streamed.
 * Most files of a product are small, and a stream per file costs more than the file.
 */
const READ_WHOLE_BYTES = 64 * 1024

/** Writes the archive of directory `dir` to `out`; see the invariants above. */
export function pack(dir: string, out: Writable): Promise<void> {
  return packEntries(
    walkTree(dir),
    (e) => {
      const path = join(dir, e.path)
      return e.size <= READ_WHOLE_BYTES ? readWhole(path, e.size) : createReadStream(path)
    },
    out,
  )
}

/**
 * A small file's bytes, read directly (as the walk reads sizes), refused if it is not the size
 * it was walked at: it changed meanwhile.
 */
function readWhole(path: string, size: number): Buffer {
  const bytes = readFileSync(path)
  if (bytes.length !== size) throw new Error(`${path} changed while it was archived`)
  return bytes
}

/**
 * The archive of a small tree given in memory (`path` → content; a `/`-ended path a directory),
 * as bytes: the same that `pack` makes of that tree on disk. Built in one go, with no stream per
 * entry: an empty product is hashed this way once per attempt.
 */
export function memoryArchive(files: Record<string, string>): Promise<Buffer> {
  const archive: Pack = tar.pack()
  const chunks: Buffer[] = []
  const done = new Promise<Buffer>((resolve, reject) => {
    archive.on('data', (chunk) => chunks.push(chunk as Buffer))
    archive.on('end', () => resolve(Buffer.concat(chunks)))
    archive.on('error', reject)
  })
  for (const path of Object.keys(files).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))) {
    const directory = path.endsWith('/')
    const content = Buffer.from(files[path]!)
    const header = headerOf({
      path: directory ? path.slice(0, -1) : path,
      type: directory ? 'directory' : 'file',
      size: directory ? 0 : content.length,
      executable: false,
    })
    if (directory) archive.entry(header)
    else archive.entry(header, content)
  }
  archive.finalize()
  return done
}

/** An archive refused on unpacking, and the entry that made it so. */
export class ArchiveRefusedError extends Error {
  /** The entry's path as the archive names it. */
  readonly entry: string
  /** Why, in words: `an absolute path`, `a symlink, not a file or a directory`, … */
  readonly why: string

  constructor(entry: string, why: string) {
    super(`the archive is refused at entry '${entry}': ${why}`)
    this.name = 'ArchiveRefusedError'
    this.entry = entry
    this.why = why
  }
}

/** Options of {@link unpack}. */
export interface UnpackOptions {
  /** The most its files may hold in all, in bytes. @default {@link DEFAULT_MAX_UNPACKED_BYTES} */
  maxBytes?: number
  /** How the cap is set, for the refusal: `--max-input-bytes`, say. @default none named */
  capName?: string
}

/**
 * An entry's bytes as tar-stream's own iterator gives them: it fails for an entry the archive
 * ended inside even when that happened before the entry is read, where Node's `pipeline` on the
 * entry itself would wait forever for an end that has already passed.
 */
async function* chunksOf(entry: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  yield* entry
}

/** A tar block: headers and data are padded to it; two zero blocks end the archive. */
const BLOCK = 512

/** The entry's path inside the target directory, or a refusal. */
function safePath(name: string): string {
  if (name.startsWith('/')) throw new ArchiveRefusedError(name, 'an absolute path')
  const parts = name.split('/').filter((p) => p !== '' && p !== '.')
  if (parts.includes('..')) throw new ArchiveRefusedError(name, "a '..' component")
  if (parts.length === 0) throw new ArchiveRefusedError(name, 'an empty path')
  return parts.join('/')
}

/**
 * Reads an archive into directory `dir`, which must not exist or be empty; see the invariants
 * above. Entries land in a sibling temporary directory renamed to `dir` once all are in.
 * Answers the bytes of the files unpacked.
 */
export async function unpack(
  input: Readable | AsyncIterable<Uint8Array>,
  dir: string,
  options: UnpackOptions = {},
): Promise<number> {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_UNPACKED_BYTES
  const source = input instanceof Readable ? input : Readable.from(input)
  await mkdir(dirname(dir), { recursive: true })
  const temp = await mkdtemp(join(dirname(dir), `.${basename(dir).slice(0, 80)}.partial-`))
  const extract = tar.extract()
  // Bytes read, and where the last entry's data ends: an archive cut at a block boundary reads
  // as a shorter one, and only the end-of-archive blocks after its last entry tell them apart.
  let read = 0
  let lastEnd = 0
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      read += chunk.length
      done(null, chunk)
    },
  })
  let readFailure: Error | undefined
  // The entry being written: an archive that ends inside it ends it too, or its file would wait
  // for the rest forever.
  let current: { destroy(e?: Error): void } | undefined
  const reading = pipeline(source, counter, extract).catch((e: unknown) => {
    readFailure = e as Error
    current?.destroy(readFailure)
  })
  let total = 0
  try {
    for await (const entry of extract) {
      current = entry
      const { name, type, size } = entry.header
      lastEnd = entry.offset + BLOCK + Math.ceil(size / BLOCK) * BLOCK
      const path = safePath(name)
      const target = join(temp, path)
      if (type === 'directory') {
        await mkdir(target, { recursive: true })
        entry.resume()
        continue
      }
      if (type !== 'file') {
        throw new ArchiveRefusedError(name, `a ${type}, not a file or a directory`)
      }
      total += size
      if (total > maxBytes) {
        const cap = options.capName === undefined ? '' : ` (${options.capName})`
        throw new ArchiveRefusedError(
          name,
          `the archive unpacks to more than ${formatSize(maxBytes)}, the cap${cap}`,
        )
      }
      await mkdir(dirname(target), { recursive: true })
      // 'wx': a second entry of the same path is refused, not written over the first.
      await pipeline(
        chunksOf(entry as AsyncIterable<Uint8Array>),
        createWriteStream(target, { flags: 'wx' }),
      ).catch((e: unknown) => {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST') {
          throw new ArchiveRefusedError(name, 'a second entry of the same path')
        }
        throw e
      })
      // Set whatever the umask: the copy must archive again to the same bytes.
      await chmod(target, (entry.header.mode ?? 0) & 0o111 ? 0o755 : 0o644)
    }
    await reading
    if (readFailure !== undefined) throw readFailure
    if (read < lastEnd + 2 * BLOCK) throw new Error('the archive ended early')
    await rename(temp, dir).catch((e: unknown) => {
      const code = (e as NodeJS.ErrnoException).code
      if (code === 'ENOTEMPTY' || code === 'EEXIST') {
        throw new Error(`cannot unpack into ${dir}: it already holds files`)
      }
      throw e
    })
    return total
  } catch (e) {
    // Why reading failed, if it did, before the destroys below add failures of their own: an
    // entry the archive ended inside fails as 'destroyed', the reading says why.
    const cause = e instanceof ArchiveRefusedError ? undefined : readFailure
    extract.destroy()
    source.destroy()
    await reading
    await rm(temp, { recursive: true, force: true })
    throw cause ?? e
  }
}
