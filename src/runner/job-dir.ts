/**
 * A job directory's inputs and its removal. A job gets each input as a copy of the product's
 * `out/`, made read-only (files 0444, directories 0555): it can read them, a write fails, and
 * even a write that succeeds (a job running as root ignores modes) changes its own copy only,
 * never the cached product that other jobs read and peers are served.
 */
import { constants } from 'node:fs'
import { chmod, copyFile, lstat, mkdir, readdir, rm } from 'node:fs/promises'
import { join } from 'node:path'

/**
 * Copies `product/out` to `to`, read-only. A product with no `out/` (a no-op's, or one whose
 * job wrote nothing: an archive carries files only, so an empty `out/` does not travel) is given
 * as an empty directory.
 */
export async function giveInput(product: string, to: string): Promise<void> {
  const from = join(product, 'out')
  const source = await lstat(from).catch(() => undefined)
  if (source?.isDirectory() === true) await copyReadOnly(from, to)
  else {
    await mkdir(to, { recursive: true })
    await chmod(to, 0o555)
  }
}

/**
 * Copies directory `from` to `to` read-only in one walk: files 0444, directories 0555, each
 * directory's contents before the directory itself. A reflink where the file system has them
 * (btrfs, XFS): no bytes copied until one is written; elsewhere a plain copy. Links are left
 * out, as the archive that takes a product to another target leaves them out: a job reads the
 * same input wherever it runs.
 */
async function copyReadOnly(from: string, to: string): Promise<void> {
  await mkdir(to, { recursive: true })
  for (const entry of await readdir(from, { withFileTypes: true })) {
    const source = join(from, entry.name)
    const target = join(to, entry.name)
    if (entry.isDirectory()) await copyReadOnly(source, target)
    else if (entry.isFile()) {
      await copyFile(source, target, constants.COPYFILE_FICLONE)
      await chmod(target, 0o444)
    }
  }
  await chmod(to, 0o555)
}

/**
 * Removes a job directory whatever modes are left in it: its read-only inputs, or directories
 * the job made read-only itself. Without write permission on a directory even its owner cannot
 * delete what is in it, and `force` does not change that; so after a refusal every directory is
 * made writable and the removal tried again.
 */
export async function removeJobDir(dir: string): Promise<void> {
  try {
    await rm(dir, { recursive: true, force: true })
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    if (code !== 'EACCES' && code !== 'EPERM') throw e
    await writable(dir)
    await rm(dir, { recursive: true, force: true })
  }
}

async function writable(dir: string): Promise<void> {
  await chmod(dir, 0o700).catch(() => {})
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => [])
  for (const entry of entries) if (entry.isDirectory()) await writable(join(dir, entry.name))
}
