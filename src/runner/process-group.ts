/**
 * The process group of an `exec` job, and how it is ended. A job is spawned as the leader of a
 * group of its own, so everything it starts (unless it leaves the group on purpose with
 * `setsid`) can be ended together: when its main process exits, when it is cancelled, when it
 * times out, when its output passes a cap, and when the process running it exits.
 *
 * Invariants:
 * - A group is ended once: every caller of {@link ProcessGroup.end} waits for the same ending.
 * - `end` resolves only when no live member is left (or, past SIGKILL, after a short bound that
 *   only a process stuck in the kernel can reach): a product is kept after that, never while a
 *   process of its job can still write into it.
 * - A group still running when this process exits gets SIGKILL from the `exit` hook: a worker
 *   that stops abruptly leaves no job running behind it.
 */
import { readFile, readdir } from 'node:fs/promises'

/** How long a group has after SIGTERM before SIGKILL. @default 2000 */
export const DEFAULT_KILL_GRACE_MS = 2000

/** How often a group that outlived a signal is looked at again. */
const POLL_MS = 25

/** How long members may take to die after SIGKILL: only a process stuck in the kernel takes it. */
const AFTER_KILL_MS = 1000

/** Groups that may still have members, by leader pid: what the `exit` hook kills. */
const live = new Map<number, ProcessGroup>()

export class ProcessGroup {
  /** The group's id: its leader's pid. */
  readonly pgid: number
  private readonly graceMs: number
  private ending: Promise<void> | undefined

  constructor(pgid: number, graceMs = DEFAULT_KILL_GRACE_MS) {
    this.pgid = pgid
    this.graceMs = graceMs
    live.set(pgid, this)
    installExitHook()
  }

  /**
   * Ends the group: SIGTERM to every member, SIGKILL to those left after the grace. Resolves
   * once none is left alive. A group whose members are all gone costs one `kill` call.
   */
  end(): Promise<void> {
    this.ending ??= this.endOnce().finally(() => live.delete(this.pgid))
    return this.ending
  }

  private async endOnce(): Promise<void> {
    if (!signal(this.pgid, 'SIGTERM')) return
    const deadline = Date.now() + this.graceMs
    while (Date.now() < deadline) {
      if (!(await hasLiveMember(this.pgid))) return
      await pause(POLL_MS)
    }
    if (!signal(this.pgid, 'SIGKILL')) return
    const killedBy = Date.now() + AFTER_KILL_MS
    while (Date.now() < killedBy && (await hasLiveMember(this.pgid))) await pause(POLL_MS)
  }
}

/**
 * Sends a signal to a group; false when it has no member left (ESRCH), or none this process may
 * signal (EPERM: a member that changed its user), which nothing here could end anyway.
 */
function signal(pgid: number, name: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pgid, name)
    return true
  } catch {
    return false
  }
}

/**
 * Whether a member of the group can still run. A member that died but was not reaped yet (a
 * zombie: its parent, or an init that does not reap, has not waited for it) still answers
 * `kill(-pgid, 0)`, yet it can write nothing; where `/proc` tells, such members do not count.
 */
async function hasLiveMember(pgid: number): Promise<boolean> {
  if (!signal(pgid, 0)) return false
  let pids: string[]
  try {
    pids = await readdir('/proc')
  } catch {
    return true
  }
  for (const pid of pids) {
    if (!/^\d+$/.test(pid)) continue
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '')
    // `pid (comm) state ppid pgrp …`; comm may hold spaces and parentheses, so read after the last.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    if (Number(fields[2]) === pgid && fields[0] !== 'Z' && fields[0] !== 'X') return true
  }
  return false
}

let hooked = false

function installExitHook(): void {
  if (hooked) return
  hooked = true
  // Synchronous, as an `exit` listener must be: no grace, the process is leaving now.
  process.on('exit', () => {
    for (const pgid of live.keys()) {
      try {
        process.kill(-pgid, 'SIGKILL')
      } catch {
        // Gone already, or not ours to signal: nothing more can be done while leaving.
      }
    }
  })
}

/** The groups not yet ended: what the exit hook would kill now. */
export function liveGroups(): number[] {
  return [...live.keys()]
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
