/**
 * A PostgreSQL server of a test's own: a cluster made with `initdb` in a temp dir, on a free
 * loopback port, that the test may stop and restart without touching the machine's shared
 * server. PostgreSQL refuses to run as root, so as root it runs as the `postgres` user.
 */
import { execFileSync } from 'node:child_process'
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from '../free-port.ts'

export interface PrivatePostgres {
  /** `postgres://postgres@127.0.0.1:PORT/postgres`. */
  url: string
  /** Stops it at once (as a crash would) and starts it again on the same port and data. */
  restart(): void
  /** Stops it as an operator would (a fast shutdown: sessions are ended, 57P01). */
  halt(): void
  /** Starts it again after {@link halt}. */
  start(): void
  /** Stops it, if it runs, and removes its data. */
  destroy(): void
}

function binDir(): string {
  const root = '/usr/lib/postgresql'
  const versions = existsSync(root) ? readdirSync(root).sort() : []
  if (versions.length === 0) throw new Error(`no PostgreSQL server under ${root}`)
  return join(root, versions.at(-1)!, 'bin')
}

export async function privatePostgres(): Promise<PrivatePostgres> {
  const bin = binDir()
  const dir = mkdtempSync(join(tmpdir(), 'lockstep-pg-'))
  const asRoot = process.getuid?.() === 0
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString())
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString())
    chownSync(dir, uid, gid)
  }
  const run = (program: string, args: string[]) =>
    execFileSync(
      asRoot ? 'runuser' : join(bin, program),
      asRoot ? ['-u', 'postgres', '--', join(bin, program), ...args] : args,
      { stdio: ['ignore', 'ignore', 'pipe'], timeout: 60_000 },
    )
  const data = join(dir, 'data')
  run('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8'])
  const port = await freePort()
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50`
  let running = false
  const start = () => {
    run('pg_ctl', ['-D', data, '-o', options, '-l', join(dir, 'log'), '-w', 'start'])
    running = true
  }
  const stop = (mode: 'immediate' | 'fast') => {
    run('pg_ctl', ['-D', data, '-m', mode, '-w', 'stop'])
    running = false
  }
  start()
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    restart() {
      stop('immediate')
      start()
    },
    halt: () => stop('fast'),
    start,
    destroy() {
      try {
        if (running) stop('immediate')
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    },
  }
}
