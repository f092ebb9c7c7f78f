/**
 * The credentials `lockstep up` saves for the workbench commands: `cli.json` in the data
 * directory (`LOCKSTEP_DATA_DIR`, else `./.lockstep`).
 *
 * Invariants: the file is written with mode 0600 (also when it was there before with a looser
 * mode); it is read from the data directory only, and only when this user owns it and no one
 * else may write it, since it says where the token goes; a saved token goes only to the saved URL.
 */
import { chmodSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'

/**
 * The data directory when `LOCKSTEP_DATA_DIR` names none: the store's `defaultDataDir`
 * (`src/store/open-store.ts`, held equal by a test), said again here so that finding cli.json
 * does not load both databases' drivers into every workbench command.
 */
export const defaultDataDir = '.lockstep'

/** What `lockstep up` saves. */
export interface Credentials {
  url: string
  token?: string
}

/** The data directory: `LOCKSTEP_DATA_DIR`, else `./.lockstep`, as an absolute path. */
export function dataDir(env: Record<string, string | undefined> = process.env): string {
  const dir = env.LOCKSTEP_DATA_DIR
  return resolve(dir === undefined || dir === '' ? defaultDataDir : dir)
}

/** Where the credentials file is. */
export function credentialsPath(dir: string = dataDir()): string {
  return join(dir, 'cli.json')
}

/** Writes the credentials with mode 0600, replacing the file whole (no moment it is looser). */
export function writeCredentials(dir: string, credentials: Credentials): string {
  const path = credentialsPath(dir)
  const temp = `${path}.${process.pid}.tmp`
  writeFileSync(temp, JSON.stringify(credentials, null, 2), { mode: 0o600 })
  // The mode given to writeFileSync is masked by the umask; set it outright.
  chmodSync(temp, 0o600)
  renameSync(temp, path)
  return path
}

/**
 * The saved credentials, or undefined when there are none. A file another user owns, or that
 * others may write, is refused with an error that says how to fix it: it would choose the
 * server the token is sent to.
 */
export function readCredentials(dir: string = dataDir()): Credentials | undefined {
  const path = credentialsPath(dir)
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch {
    return undefined
  }
  const st = statSync(path)
  const uid = process.getuid?.()
  if ((uid !== undefined && st.uid !== uid) || (st.mode & 0o022) !== 0) {
    throw new Error(
      `${path} is not safe to use (it must belong to you and be writable by you alone): run 'chmod 600 ${path}', or remove it and run 'lockstep up' again`,
    )
  }
  try {
    return JSON.parse(text) as Credentials
  } catch {
    throw new Error(`${path} is not valid JSON: remove it and run 'lockstep up' again`)
  }
}
