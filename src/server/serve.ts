/**
 * The scheduler process's wiring: the store, the SchedulerService, the push targets (the
 * initiator, and the clusters of the targets file) with their push loop, and the HTTP server,
 * started together and closed together. `lockstep server` and `lockstep up` run it, and a
 * program embedding Lockstep calls it through `lockstep/server`.
 */
import { mkdirSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { LockstepError } from '../core/errors.ts'
import type { LimitsOptions } from '../core/limits.ts'
import { capabilityKeyFile } from '../service/capabilities.ts'
import { SchedulerService } from '../service/service.ts'
import { openStore, storeUrlFromEnvironment } from '../store/open-store.ts'
import type { Store } from '../store/store.ts'
import { FinalProducts } from '../targets/final-products.ts'
import { InitiatorDriver, initiatorRuns } from '../targets/initiator.ts'
import type { ResolvedTarget } from '../targets/kubernetes/targets-file.ts'
import { PushLoop } from '../targets/push-loop.ts'
import type { TargetDriver } from '../targets/target-driver.ts'
import type { TokenEntry } from './auth.ts'
import { startServer } from './server.ts'

/** A running scheduler: its URL, and how to stop it. */
export interface Serving {
  url: string
  /** Stops serving, then closes the push targets, the service and the store. */
  close(): Promise<void>
}

/** Options of {@link serve}. */
export interface ServeOptions {
  /** The port to listen on; 0 picks a free one ({@link Serving.url} says which). */
  port: number
  /** The address to listen on, e.g. `127.0.0.1`. */
  host: string
  /** `role:name:token` entries (`parseTokens`); none leaves the server open to whoever reaches it. */
  tokens: TokenEntry[]
  /** Lets workbenches download products; the final products of each order are then kept here. */
  allowDownload: boolean
  /**
   * The scheduler's folder: its capability key, the initiator's products, and the SQLite store
   * unless `store` or `LOCKSTEP_DATABASE_URL` names another.
   */
  dataDir: string
  /**
   * The store to run on, opened by the caller (`openStore(url)`); the scheduler holds it while
   * it runs and closes it with itself.
   * @default LOCKSTEP_DATABASE_URL when set, else SQLite at `dataDir/lockstep.db`
   */
  store?: Store
  /** How long a worker's lease lasts without a heartbeat. @default 30000 */
  leaseMs?: number
  /** Logs one JSON line per request to standard error. */
  log: boolean
  /** The URL clients reach the server at, accepted in the Host header. */
  publicUrl?: string
  /** The initiator runs `exec` jobs: user code in this process (`--initiator-exec`). @default false */
  initiatorExec?: boolean
  /** How long the capabilities on assignment inputs last. @default 10 minutes */
  capabilityTtlMs?: number
  /** Push targets from the targets file (`--targets`): Kubernetes clusters. @default none */
  targets?: readonly ResolvedTarget[]
  /** What one request may cause (`--max-jobs-per-order` and the rest). @default defaultLimits */
  limits?: LimitsOptions
  /**
   * Called when a commit fails for good: the scheduler cannot go on, and the store holds every
   * change it acknowledged.
   * @default says so on standard error and exits the process with code 3
   */
  onFatal?: (error: unknown) => void
}

/** An error in one line for the operator: its message, and its code when it has one. */
function messageOf(e: unknown): string {
  if (e instanceof LockstepError) return `${e.message} (${e.code})`
  return e instanceof Error ? e.message : String(e)
}

/**
 * Starts a scheduler on a store (the one given, else SQLite under `dataDir` or
 * LOCKSTEP_DATABASE_URL) and serves its API and dashboard until {@link Serving.close}.
 */
export async function serve(options: ServeOptions): Promise<Serving> {
  const store =
    options.store ??
    openStore(storeUrlFromEnvironment({ ...process.env, LOCKSTEP_DATA_DIR: options.dataDir }))
  const workerToken = options.tokens.find((t) => t.role === 'worker')?.token
  // The capability key outlives a restart: workers hold its public half, and capabilities
  // already handed out stay good.
  mkdirSync(options.dataDir, { recursive: true })
  const privateKey = capabilityKeyFile(join(options.dataDir, 'capability-key.pem'))
  // A store held by another scheduler (STORE_HELD), or one that cannot be read, is let go
  // before the error is said: an open pool would keep the process alive.
  const service = await SchedulerService.start({
    store,
    capabilities: { privateKey, ttlMs: options.capabilityTtlMs },
    engine: {
      leaseMs: options.leaseMs ?? 30_000,
      initiatorRuns: initiatorRuns({ exec: options.initiatorExec }),
      ...(options.limits === undefined ? {} : { limits: options.limits }),
    },
    onFatal:
      options.onFatal ??
      ((e) => {
        process.stderr.write(`lockstep server: a commit failed, stopping: ${messageOf(e)}\n`)
        process.exit(3)
      }),
  }).catch(async (e: unknown) => {
    await store.close().catch(() => {})
    throw e
  })
  // Push targets: the initiator in this process, and the clusters of the targets file.
  const initiator = new InitiatorDriver(service, {
    dir: resolve(options.dataDir, 'initiator'),
    token: workerToken,
    exec: options.initiatorExec,
  })
  await initiator.open()
  const clusters = await openClusters(service, options.targets ?? [])
  const push = new PushLoop(service, [initiator, ...clusters], {
    onError: (e) => process.stderr.write(`lockstep server: push loop: ${messageOf(e)}\n`),
  })
  const server = await startServer({
    service,
    port: options.port,
    host: options.host,
    tokens: options.tokens,
    allowDownload: options.allowDownload,
    products: [initiator],
    drivers: [initiator, ...clusters],
    log: options.log,
    ...(options.limits?.maxStreamsPerCaller === undefined
      ? {}
      : { maxStreamsPerCaller: options.limits.maxStreamsPerCaller }),
    ...(options.publicUrl === undefined ? {} : { publicUrl: options.publicUrl }),
  })
  await push.start()
  // Orders that succeed bring their final products home to the initiator's cache, so they can
  // be downloaded from here once their workers are gone (seed 001: "if the node configuration
  // allows it"). A server that allows no download fetches nothing: every job of a packet of
  // independent jobs is a last job, and bringing thousands of products home that nobody may
  // download would cost the scheduler a fetch and a capability each.
  const home = options.allowDownload
    ? new FinalProducts(service, initiator, {
        onError: (message) => process.stderr.write(`lockstep server: final products: ${message}\n`),
      })
    : undefined
  home?.start()
  return {
    url: server.url,
    async close() {
      await server.close()
      await home?.close()
      await push.close()
      await service.close()
    },
  }
}

/**
 * The drivers of the targets file's clusters, open. A kubeconfig that cannot be read or a
 * cluster that does not answer is said on standard error and in `lockstep targets`; such a
 * target gets no work until it answers. The client is loaded only when there are clusters: it
 * would cost every other start of the command a second.
 */
async function openClusters(
  service: SchedulerService,
  targets: readonly ResolvedTarget[],
): Promise<TargetDriver[]> {
  if (targets.length === 0) return []
  const { KubernetesDriver } = await import('../targets/kubernetes/driver.ts')
  const clusters = targets.map(
    (target) =>
      new KubernetesDriver(target, {
        onProblem: (problem) => {
          service.reportProblem(target.name, problem)
          process.stderr.write(
            `lockstep server: target ${target.name}: ${problem ?? 'the cluster answers'}\n`,
          )
        },
        onError: (e) =>
          process.stderr.write(`lockstep server: target ${target.name}: ${messageOf(e)}\n`),
        ownerOf: (a) => service.orderOwner(a.orderId),
      }),
  )
  await Promise.all(clusters.map((c) => c.open()))
  return clusters
}
