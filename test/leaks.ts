/**
 * Leak checks for the outer layers: whatever a test opened must be closed once its own teardown
 * has run. `checkLeaks()` registers two hooks. Before each test it counts the process's listening
 * servers, sockets and child processes; after each test (and after the file's own `afterEach`,
 * which must be registered after it: later `afterEach` hooks run first) it fails the test if
 *
 * - a child process the test tracked has not exited,
 * - a server it tracked still listens (or, for a {@link RunningServer}, still accepts a connection),
 * - a service it tracked still takes work, or left timers on the fake clock it was given,
 * - or the process holds more listening servers, sockets or child processes than before the test
 *   (what the test forgot to track: a store's pool, a kept-alive stream, a worker's server).
 *
 * Counts settle a little after a close (a socket ends on the next turns of the event loop), so
 * the check waits for them, up to a bound, before it fails.
 */
import type { ChildProcess } from 'node:child_process'
import type { Server } from 'node:http'
import { connect } from 'node:net'
import { afterEach, beforeEach, expect } from 'vitest'
import type { RunningServer } from '../src/server/server.ts'
import type { SchedulerService } from '../src/service/service.ts'
import type { FakeClock } from '../src/core/clock.ts'
import { LockstepError } from '../src/core/errors.ts'

/** The kinds of handle Node reports that a test must give back. */
const KINDS = ['TCPServerWrap', 'TCPSocketWrap', 'ProcessWrap'] as const
type Kind = (typeof KINDS)[number]

/** How long open handles may take to close after the test's teardown. */
const SETTLE_MS = 3000

/** What a test opened, to be found closed after it. */
export interface Opened {
  /** A child process: it must have exited (with a code or a signal). */
  child<T extends ChildProcess>(child: T, name?: string): T
  /** A server: it must no longer listen. */
  server<T extends Server | RunningServer>(server: T, name?: string): T
  /**
   * A scheduler service: it must refuse work as closed; given the fake clock it runs on, no timer
   * of its engine may be left on it.
   */
  service<T extends SchedulerService>(service: T, options?: { clock?: FakeClock; name?: string }): T
  /** Stops tracking what the test drops on purpose (a simulated crash leaves a service open). */
  forget(thing: object): void
}

interface Tracked {
  thing: object
  name: string
  /** Resolves with why it is still open, or undefined once closed. */
  open(): Promise<string | undefined>
}

function count(): Record<Kind, number> {
  const out = Object.fromEntries(KINDS.map((k) => [k, 0])) as Record<Kind, number>
  for (const kind of process.getActiveResourcesInfo()) {
    if ((KINDS as readonly string[]).includes(kind)) out[kind as Kind]++
  }
  return out
}

/** True when something accepts a connection on the port. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port })
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
  })
}

async function settled<T>(probe: () => Promise<T>, done: (t: T) => boolean): Promise<T> {
  const deadline = Date.now() + SETTLE_MS
  let value = await probe()
  while (!done(value) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 10))
    value = await probe()
  }
  return value
}

/** Registers the leak check for every test of the file (or the describe) it is called in. */
export function checkLeaks(): Opened {
  let tracked: Tracked[] = []
  let before = count()

  beforeEach(() => {
    tracked = []
    before = count()
  })

  afterEach(async () => {
    const list = tracked
    tracked = []
    const still: string[] = []
    for (const t of list) {
      const why = await settled(
        () => t.open(),
        (w) => w === undefined,
      )
      if (why !== undefined) still.push(`${t.name}: ${why}`)
    }
    const now = await settled(
      () => Promise.resolve(count()),
      (c) => KINDS.every((k) => c[k] <= before[k]),
    )
    for (const k of KINDS) {
      if (now[k] > before[k]) still.push(`${now[k] - before[k]} more ${k} than before the test`)
    }
    expect(still, 'left open by the test').toEqual([])
  })

  const add = (thing: object, name: string, open: Tracked['open']) =>
    tracked.push({ thing, name, open })
  return {
    child(child, name = `child process ${child.pid}`) {
      add(child, name, () =>
        Promise.resolve(
          child.exitCode !== null || child.signalCode !== null ? undefined : 'still running',
        ),
      )
      return child
    },
    server(server, name = 'server') {
      if ('listening' in server) {
        add(server, name, () => Promise.resolve(server.listening ? 'still listening' : undefined))
      } else {
        const port = server.port
        add(server, `${name} on port ${port}`, async () =>
          (await accepts(port)) ? 'still accepts connections' : undefined,
        )
      }
      return server
    },
    service(service, { clock, name = 'scheduler service' } = {}) {
      add(service, name, async () => {
        try {
          await service.cycle(new Map())
          return 'still takes work'
        } catch (e) {
          if (!(e instanceof LockstepError && e.code === 'UNAVAILABLE')) throw e
        }
        const timers = clock?.pendingTimers() ?? 0
        return timers === 0 ? undefined : `${timers} timers left on its clock`
      })
      return service
    },
    forget(thing) {
      tracked = tracked.filter((t) => t.thing !== thing)
    },
  }
}
