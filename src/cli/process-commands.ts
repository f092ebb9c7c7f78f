/**
 * The long-running commands: `lockstep server`, `lockstep worker`, and `lockstep up` (a
 * scheduler and local workers in one process, with the demo when asked). Each serves until
 * SIGINT or SIGTERM, then closes what it started.
 */
import { pino } from 'pino'
import { randomBytes } from 'node:crypto'
import { mkdirSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { isWorkerUrl } from '../core/protocol.ts'
import { parseSize } from '../core/sizes.ts'
import { parseTokens } from '../server/auth.ts'
import type { TokenEntry } from '../server/auth.ts'
import { defaultDataDir } from '../store/open-store.ts'
import { WorkerAgent } from '../worker/agent.ts'
import { credentialsPath, dataDir, writeCredentials } from './credentials.ts'
import { runExamples, sampleData } from './demo.ts'
import type { Out } from './output.ts'
import { operationKinds } from '../core/model.ts'
import { defaultLimits } from '../core/limits.ts'
import type { LimitsOptions } from '../core/limits.ts'
import type { OperationKind } from '../core/model.ts'
import { readTargetsFile, TargetsFileError } from '../targets/kubernetes/targets-file.ts'
import type { ResolvedTarget } from '../targets/kubernetes/targets-file.ts'
import { serve } from '../server/serve.ts'
import type { Serving } from '../server/serve.ts'

/** `lockstep server`: the scheduler, until a signal. */
export async function server(args: string[], out: Out): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      port: { type: 'string', default: process.env.LOCKSTEP_PORT ?? '7300' },
      host: { type: 'string', default: '127.0.0.1' },
      tokens: { type: 'string', default: process.env.LOCKSTEP_TOKENS ?? '' },
      'tokens-file': { type: 'string', default: process.env.LOCKSTEP_TOKENS_FILE },
      'public-url': { type: 'string' },
      'insecure-open': { type: 'boolean', default: false },
      'allow-download': { type: 'boolean', default: false },
      'data-dir': { type: 'string', default: process.env.LOCKSTEP_DATA_DIR ?? defaultDataDir },
      'lease-ms': { type: 'string', default: '30000' },
      'initiator-exec': { type: 'boolean', default: false },
      'capability-ttl-ms': { type: 'string', default: '600000' },
      targets: { type: 'string', default: process.env.LOCKSTEP_TARGETS_FILE },
      ...limitFlags,
    },
  })
  const limits = limitsFrom(values)
  if (typeof limits === 'string') {
    process.stderr.write(`lockstep server: ${limits}\n`)
    return 2
  }
  // A bad targets file stops the server before it opens anything, naming the file and field.
  let targets: ResolvedTarget[] = []
  if (values.targets !== undefined && values.targets !== '') {
    try {
      targets = readTargetsFile(values.targets).targets
    } catch (e) {
      if (!(e instanceof TargetsFileError)) throw e
      process.stderr.write(`lockstep server: ${e.message}\n`)
      return 2
    }
  }
  const tokens = [
    ...parseTokens(values.tokens),
    ...(values['tokens-file'] === undefined ? [] : readTokensFile(values['tokens-file'])),
  ]
  const publicUrl = values['public-url']
  if (publicUrl !== undefined && !isWorkerUrl(publicUrl)) {
    process.stderr.write(
      `lockstep server: --public-url must be http(s)://host[:port] with an optional path, got '${publicUrl}'\n`,
    )
    return 2
  }
  const capabilityTtlMs = Number(values['capability-ttl-ms'])
  if (!Number.isInteger(capabilityTtlMs) || capabilityTtlMs < 1000) {
    process.stderr.write(
      `lockstep server: --capability-ttl-ms must be a whole number of milliseconds, at least 1000, got '${values['capability-ttl-ms']}'\n`,
    )
    return 2
  }
  // Safe by default: a server without tokens is open to whoever reaches it, so it reaches
  // only this machine unless the operator says, in so many words, that open is what they want.
  const open = tokens.length === 0
  if (open && !isLoopback(values.host) && !values['insecure-open']) {
    process.stderr.write(
      `lockstep server: refusing to listen on ${values.host} with no tokens: anyone who reaches it could run jobs on your workers. ` +
        `Give tokens (--tokens, --tokens-file, LOCKSTEP_TOKENS or LOCKSTEP_TOKENS_FILE), listen on loopback (the default), ` +
        `or pass --insecure-open if an open server on the network is truly what you want.\n`,
    )
    return 2
  }
  const s = await serve({
    port: Number(values.port),
    host: values.host,
    tokens,
    allowDownload: values['allow-download'],
    dataDir: values['data-dir'],
    leaseMs: Number(values['lease-ms']),
    log: true,
    ...(publicUrl === undefined ? {} : { publicUrl }),
    initiatorExec: values['initiator-exec'],
    capabilityTtlMs,
    targets,
    limits,
  })
  const note = !open
    ? ''
    : isLoopback(values.host)
      ? ' (open: no tokens configured; listening on loopback only)'
      : ' (OPEN to anyone who reaches it: no tokens, --insecure-open)'
  out(`lockstep server listening on ${s.url}${note}`)
  await untilSignal()
  await s.close()
  return 0
}

/** The server's limits as flags, `--max-jobs-per-order N` and so on (docs/operations.md). */
const limitFlags = Object.fromEntries(
  Object.keys(defaultLimits).map((key) => [flagOf(key), { type: 'string' as const }]),
)

function flagOf(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)
}

/** The limits given as flags, or what is wrong with one. */
function limitsFrom(values: Record<string, unknown>): LimitsOptions | string {
  const out: LimitsOptions = {}
  for (const key of Object.keys(defaultLimits) as (keyof LimitsOptions)[]) {
    const text = values[flagOf(key)]
    if (typeof text !== 'string') continue
    const n = Number(text)
    if (!/^[0-9]+$/.test(text) || !Number.isSafeInteger(n) || n < 1) {
      return `--${flagOf(key)} must be a positive whole number, got '${text}'`
    }
    out[key] = n
  }
  return out
}

/** True for an address or name that only this machine reaches. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[(.*)\]$/, '$1').toLowerCase()
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h)
}

/** Tokens from a file: `role:name:token` lines, `#` comments; errors name the file. */
function readTokensFile(path: string): TokenEntry[] {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (e) {
    throw new Error(`cannot read the tokens file ${path}: ${(e as Error).message}`)
  }
  return parseTokens(text, path)
}

/** `lockstep worker`: a worker agent, until a signal. */
export async function worker(args: string[], out: Out): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      server: { type: 'string' },
      token: { type: 'string' },
      id: { type: 'string' },
      slots: { type: 'string', default: '1' },
      data: { type: 'string', multiple: true, default: [] },
      cache: { type: 'string' },
      'cache-bytes': { type: 'string' },
      'max-product-bytes': { type: 'string', default: '10GiB' },
      'max-input-bytes': { type: 'string', default: '10GiB' },
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '0' },
      advertise: { type: 'string' },
      allow: { type: 'string', default: 'builtin,exec' },
      'kill-grace-ms': { type: 'string' },
      'max-stdout-bytes': { type: 'string', default: '64MiB' },
      'max-stderr-bytes': { type: 'string', default: '64MiB' },
    },
  })
  const serverUrl = values.server ?? process.env.LOCKSTEP_URL
  if (serverUrl === undefined) throw new Error('say which scheduler: --server URL')
  if (values.id === undefined) throw new Error('name this worker: --id ID')
  const agent = await WorkerAgent.start({
    server: serverUrl,
    token: values.token ?? process.env.LOCKSTEP_TOKEN,
    id: values.id,
    slots: Number(values.slots),
    data: parseData(values.data),
    cacheDir: resolve(values.cache ?? join(defaultDataDir, 'workers', values.id)),
    cacheBytes:
      values['cache-bytes'] === undefined
        ? undefined
        : parseSize(values['cache-bytes'], '--cache-bytes'),
    maxProductBytes: parseSize(values['max-product-bytes'], '--max-product-bytes'),
    maxInputBytes: parseSize(values['max-input-bytes'], '--max-input-bytes'),
    host: values.host,
    port: Number(values.port),
    advertiseUrl: values.advertise,
    runs: parseAllow(values.allow),
    killGraceMs: count(values['kill-grace-ms'], '--kill-grace-ms', 0),
    maxStdoutBytes: parseSize(values['max-stdout-bytes'], '--max-stdout-bytes'),
    maxStderrBytes: parseSize(values['max-stderr-bytes'], '--max-stderr-bytes'),
    logger: pino(pino.destination(2)),
  })
  out(`lockstep worker ${agent.id} serving products on ${agent.productUrl}`)
  await untilSignal()
  await agent.stop()
  return 0
}

function parseData(entries: string[]): Record<string, string> {
  const data: Record<string, string> = {}
  for (const entry of entries) {
    const eq = entry.indexOf('=')
    if (eq <= 0) throw new Error(`--data takes project=PATH, got '${entry}'`)
    data[entry.slice(0, eq)] = resolve(entry.slice(eq + 1))
  }
  return data
}

/** A whole number flag of at least `min`; undefined when not given. */
function count(text: string | undefined, flag: string, min: number): number | undefined {
  if (text === undefined) return undefined
  const n = Number(text)
  if (!Number.isSafeInteger(n) || n < min) {
    throw new Error(`${flag} takes a whole number of at least ${min}, got '${text}'`)
  }
  return n
}

/** `--allow builtin,exec`: the operation kinds a worker runs. */
function parseAllow(list: string): OperationKind[] {
  const kinds = list.split(',').map((k) => k.trim())
  for (const k of kinds) {
    if (!(operationKinds as readonly string[]).includes(k)) {
      throw new Error(`--allow takes kinds from ${operationKinds.join(', ')}, got '${k}'`)
    }
  }
  return kinds as OperationKind[]
}

/** `lockstep up [--examples]`: a scheduler and local workers, and the demo, until a signal. */
export async function up(args: string[], out: Out): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      port: { type: 'string', default: '7300' },
      workers: { type: 'string', default: '3' },
      examples: { type: 'boolean', default: false },
    },
  })
  const running = await startLocal(Number(values.port), Number(values.workers))
  out(`Lockstep is running at ${running.url} with ${running.workers.length} workers.`)
  // The token rides in the fragment, which the browser never sends: the page keeps it for the tab.
  out(`Dashboard: ${running.url}/#token=${encodeURIComponent(running.token)}`)
  out(`Try: npx lockstep status   (credentials are in ${credentialsPath()})`)
  if (values.examples) await runExamples(running, out)
  out('Serving until Ctrl-C.')
  await untilSignal()
  await running.close()
  return 0
}

/**
 * A scheduler and local workers in the data directory (`LOCKSTEP_DATA_DIR`, else ./.lockstep),
 * with fresh tokens saved for the workbench commands; what `up` runs.
 */
export async function startLocal(
  port: number,
  count: number,
): Promise<Serving & { workers: WorkerAgent[]; token: string; workerToken: string }> {
  const dir = dataDir()
  mkdirSync(dir, { recursive: true })
  const secret = () => randomBytes(18).toString('base64url')
  const workbench = secret()
  const workerToken = secret()
  // One fleet token for the local workers: it covers their ids (worker-1, worker-2, …) and no
  // other, and peers share it to fetch each other's products.
  const tokens: TokenEntry[] = [
    { role: 'admin', name: 'you', token: workbench },
    { role: 'worker', name: 'worker-*', token: workerToken },
  ]
  const s = await serve({
    port,
    host: '127.0.0.1',
    tokens,
    allowDownload: true,
    dataDir: dir,
    log: false,
  })
  writeCredentials(dir, { url: s.url, token: workbench })
  const agents: WorkerAgent[] = []
  for (let i = 1; i <= count; i++) {
    const id = `worker-${i}`
    agents.push(
      await WorkerAgent.start({
        server: s.url,
        token: workerToken,
        id,
        slots: 4,
        data: sampleData(i),
        cacheDir: join(dir, 'workers', id),
      }),
    )
  }
  return {
    url: s.url,
    workers: agents,
    token: workbench,
    workerToken,
    async close() {
      for (const a of agents) await a.stop()
      await s.close()
    },
  }
}

/** Resolves at the first SIGINT or SIGTERM, and stops listening for them. */
function untilSignal(): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      process.off('SIGINT', done)
      process.off('SIGTERM', done)
      resolve()
    }
    process.on('SIGINT', done)
    process.on('SIGTERM', done)
  })
}
