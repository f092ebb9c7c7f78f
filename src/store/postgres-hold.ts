/**
 * One scheduler per PostgreSQL schema: a session-level advisory lock, `pg_try_advisory_lock`,
 * taken on a connection of its own and kept for the life of the process. The server lets go
 * when that session ends, however it ends, so a SIGKILLed holder cannot block a restart. The
 * session's `application_name` says who holds it (pid, host, since when), which a refused
 * process reads from `pg_stat_activity`.
 *
 * Commits run on this same session. That is the fence: a commit can only reach the database
 * through the session that holds the lock, so once the session drops, nothing is written until
 * it is opened and the lock taken again; if another process took it meanwhile, the commit
 * throws STORE_HELD and this scheduler stops.
 *
 * Invariants: the session is pinged while idle, so a dead network is noticed within seconds
 * even with nothing to write; the server's own keepalive on the session ends it, and frees the
 * lock, within about 25 s of the holder's host vanishing.
 */
import { hostname } from 'node:os'
import pg from 'pg'
import { LockstepError } from '../core/errors.ts'
import { heldMessage } from './sqlite-hold.ts'
import type { HoldOptions, StoreHolder } from './store.ts'

/** The first half of the lock's key: "Lksp". The second is the schema's hash. */
const KEY = 0x4c6b7370

/** FNV-1a of the schema name, as a non-negative 31-bit integer. */
function schemaKey(schema: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < schema.length; i++) {
    h ^= schema.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return h & 0x7fffffff
}

/** `lockstep <pid> <since> <host>`: PostgreSQL keeps 63 bytes, so the host goes last. */
function applicationName(me: StoreHolder): string {
  return `lockstep ${me.pid} ${me.since} ${me.host}`
}

function parseApplicationName(name: string): StoreHolder | undefined {
  const m = /^lockstep (\d+) (\d+) (.*)$/.exec(name)
  return m === null ? undefined : { pid: Number(m[1]), since: Number(m[2]), host: m[3]! }
}

/** Options of a {@link PostgresHold}. */
export interface PostgresHoldOptions {
  /** How to open the session (connection string, timeouts, search path). */
  client: pg.ClientConfig
  schema: string
  /** How often the idle session is pinged. @default 5000 */
  pingMs?: number
}

export class PostgresHold {
  private readonly options: PostgresHoldOptions
  private readonly me: StoreHolder = { pid: process.pid, host: hostname(), since: Date.now() }
  private client: pg.Client | undefined
  /** The server's pid of the last session that held the store, to know it if it lingers. */
  private backendPid: number | undefined
  private opening: Promise<pg.Client> | undefined
  private onLost: HoldOptions['onLost']
  private ping: NodeJS.Timeout | undefined
  /** A transaction runs on the session: no ping then, it would queue behind it and time out. */
  private busy = false
  /** hold() was called: commits go through the session. */
  wanted = false
  private closed = false

  constructor(options: PostgresHoldOptions) {
    this.options = options
  }

  /** Takes the hold, or throws STORE_HELD naming the holder. */
  async take(options: HoldOptions = {}): Promise<void> {
    this.onLost = options.onLost
    await this.session()
    this.wanted = true
  }

  /** Runs `fn` on the holding session, opened and the lock taken again if it dropped. */
  async run<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
    const client = await this.session()
    this.busy = true
    try {
      return await fn(client)
    } finally {
      this.busy = false
    }
  }

  /** The session cannot be trusted any more (a ROLLBACK failed): drop it and open another. */
  drop(error: Error): void {
    const client = this.client
    if (client === undefined) return
    this.lost(client, error)
    void client.end().catch(() => {})
  }

  private session(): Promise<pg.Client> {
    if (this.closed) return Promise.reject(new LockstepError('UNAVAILABLE', 'the store is closed'))
    if (this.client !== undefined) return Promise.resolve(this.client)
    this.opening ??= this.open().finally(() => (this.opening = undefined))
    return this.opening
  }

  private async open(): Promise<pg.Client> {
    const client = new pg.Client({
      ...this.options.client,
      application_name: applicationName(this.me),
    })
    // A connection error also ends the session: 'end' says so once.
    client.on('error', () => {})
    await client.connect()
    try {
      const { rows } = await client.query<{ ok: boolean; pid: number }>(
        'SELECT pg_try_advisory_lock($1, $2) AS ok, pg_backend_pid() AS pid',
        [KEY, schemaKey(this.options.schema)],
      )
      if (rows[0]?.ok !== true) throw await this.refusal(client)
      this.backendPid = rows[0].pid
    } catch (e) {
      await client.end().catch(() => {})
      throw e
    }
    if (this.closed) {
      await client.end().catch(() => {})
      throw new LockstepError('UNAVAILABLE', 'the store is closed')
    }
    client.on('end', () => this.lost(client, new Error('the session holding the store ended')))
    this.client = client
    this.ping ??= setInterval(() => this.check(), this.options.pingMs ?? 5000)
    this.ping.unref()
    return client
  }

  /** STORE_HELD naming the holder; or, if the holder is this process's own dropped session, a fault that passes. */
  private async refusal(client: pg.Client): Promise<LockstepError> {
    const { rows } = await client.query<{ name: string; pid: number }>(
      `SELECT a.application_name AS name, a.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
       WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1 AND l.objid = $2
         AND l.objsubid = 2 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
      [KEY, schemaKey(this.options.schema)],
    )
    const holder = rows[0] === undefined ? undefined : parseApplicationName(rows[0].name)
    if (rows[0] !== undefined && rows[0].pid === this.backendPid) {
      // The server has not yet noticed that our old session is gone; its keepalive will.
      return new LockstepError(
        'STORE_UNAVAILABLE',
        'the database still keeps this scheduler’s previous session, which held the store',
      )
    }
    return new LockstepError('STORE_HELD', heldMessage(`schema ${this.options.schema}`, holder))
  }

  private check(): void {
    const client = this.client
    if (client === undefined || this.busy) return
    const ms = this.options.pingMs ?? 5000
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`the session holding the store did not answer in ${ms} ms`)),
        ms,
      )
    })
    Promise.race([client.query('SELECT 1'), late])
      .catch((e: unknown) => {
        if (this.client === client) this.drop(e as Error)
      })
      .finally(() => clearTimeout(timer))
  }

  private lost(client: pg.Client, error: Error): void {
    if (this.client !== client) return
    this.client = undefined
    clearInterval(this.ping)
    this.ping = undefined
    if (!this.closed) this.onLost?.(error)
  }

  async close(): Promise<void> {
    this.closed = true
    clearInterval(this.ping)
    this.ping = undefined
    const client = this.client
    this.client = undefined
    await this.opening?.catch(() => {})
    await client?.end().catch(() => {})
  }
}
