/**
 * The scheduler process's wiring: the store, the SchedulerService, the Initiator and the HTTP
 * server, started together and closed together. `lockstep server` and `lockstep up` run it.
 */
import { resolve } from 'node:path'
import { SchedulerService } from '../service/service.ts'
import type { TokenEntry } from '../server/auth.ts'
import { Initiator } from '../server/initiator.ts'
import { startServer } from '../server/server.ts'
import { openStore, storeUrlFromEnvironment } from '../store/open-store.ts'
import { describe } from './output.ts'

/** A running scheduler: its URL, and how to stop it. */
export interface Serving {
  url: string
  close(): Promise<void>
}

/** Starts a scheduler on a store (SQLite under `dataDir`, or LOCKSTEP_DATABASE_URL). */
export async function serve(options: {
  port: number
  host: string
  tokens: TokenEntry[]
  allowDownload: boolean
  dataDir: string
  leaseMs?: number
  log: boolean
}): Promise<Serving> {
  const url = storeUrlFromEnvironment({ ...process.env, LOCKSTEP_DATA_DIR: options.dataDir })
  const store = openStore(url)
  const initiator = new Initiator(
    resolve(options.dataDir, 'initiator'),
    options.tokens.find((t) => t.role === 'worker')?.token,
  )
  await initiator.open()
  const service = await SchedulerService.start({
    store,
    runInitiatorJob: initiator.run,
    engine: { leaseMs: options.leaseMs ?? 30_000 },
    onFatal: (e) => {
      process.stderr.write(`lockstep server: a commit failed, stopping: ${describe(e)}\n`)
      process.exit(3)
    },
  })
  initiator.attach(service)
  const server = await startServer({
    service,
    port: options.port,
    host: options.host,
    tokens: options.tokens,
    allowDownload: options.allowDownload,
    initiator,
    log: options.log
      ? (e) => process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), ...e })}\n`)
      : undefined,
  })
  return {
    url: server.url,
    async close() {
      await server.close()
      await service.close()
    },
  }
}
