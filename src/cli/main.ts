/**
 * `lockstep <command>`: the scheduler, the worker agent and the workbench in one program.
 * Every command that prints data takes `--json`; every error says what to do.
 */
import { randomBytes } from 'node:crypto'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { Readable } from 'node:stream'
import { LockstepClient } from '../client/client.ts'
import type { StreamEvent } from '../client/client.ts'
import { central, parseCsv } from '../core/analytics.ts'
import type { Analytic, AnalyticsArgs, Result } from '../core/analytics.ts'
import type { OrderFulfilment } from '../core/engine/fulfilment.ts'
import { productOf } from '../core/model.ts'
import { LockstepError, ValidationError, formatIssue } from '../core/errors.ts'
import { SchedulerService } from '../service/service.ts'
import { parseTokens } from '../server/auth.ts'
import type { TokenEntry } from '../server/auth.ts'
import { InitiatorDriver } from '../targets/initiator.ts'
import { PushLoop } from '../targets/push-loop.ts'
import { startServer } from '../server/server.ts'
import { defaultDataDir, openStore, storeUrlFromEnvironment } from '../store/open-store.ts'
import { unpack } from '../runner/products.ts'
import { WorkerAgent } from '../worker/agent.ts'

const usage = `lockstep — a distributed job scheduler

  lockstep up [--port 7300] [--workers 3]      a scheduler and local workers, for trying it out
  lockstep server [--port 7300] [--host H]     the scheduler (state in ./.lockstep, or
                  [--tokens role:name:token,…] LOCKSTEP_DATABASE_URL for PostgreSQL)
                  [--allow-download]
  lockstep worker --server URL --id ID         a worker agent
                  [--token T] [--slots N] [--data project=PATH …] [--cache DIR]
                  [--host H --port P --advertise URL]  where peers fetch its products
  lockstep submit FILE [--priority N] [--follow]
  lockstep status [ORDER]
  lockstep cancel ORDER | --job JOB
  lockstep workers | targets
  lockstep logs JOB                            its output, or why its attempts failed
  lockstep download ORDER [--to DIR]           its products (when the server allows it)

Workbench commands find the scheduler in --server/--token, LOCKSTEP_URL/LOCKSTEP_TOKEN, or the
credentials that 'lockstep up' writes to ./.lockstep/cli.json. Add --json for machine output.`

type Out = (line: string) => void

/** Runs one command line; returns the exit code. */
export async function main(
  argv: string[],
  out: Out = (l) => process.stdout.write(`${l}\n`),
): Promise<number> {
  const [command, ...rest] = argv
  try {
    switch (command) {
      case 'up':
        return await up(rest, out)
      case 'server':
        return await server(rest, out)
      case 'worker':
        return await worker(rest, out)
      case 'submit':
        return await submit(rest, out)
      case 'status':
        return await status(rest, out)
      case 'cancel':
        return await cancel(rest, out)
      case 'workers':
      case 'targets':
        return await workers(rest, out)
      case 'logs':
        return await logs(rest, out)
      case 'download':
        return await download(rest, out)
      case undefined:
      case 'help':
      case '--help':
        out(usage)
        return command === undefined ? 2 : 0
      default:
        process.stderr.write(`lockstep: no command '${command}'\n\n${usage}\n`)
        return 2
    }
  } catch (e) {
    process.stderr.write(`lockstep ${command}: ${describe(e)}\n`)
    return 1
  }
}

function describe(e: unknown): string {
  if (e instanceof Error && 'code' in e && e.code === 'EADDRINUSE') {
    return `${e.message}: another program (another Lockstep?) holds that port; stop it or pass --port`
  }
  if (e instanceof ValidationError) return e.issues.map(formatIssue).join('\n  ')
  if (e instanceof LockstepError) return `${e.message} (${e.code})`
  if (
    e instanceof Error &&
    'code' in e &&
    typeof e.code === 'string' &&
    e.code.startsWith('ERR_PARSE_ARGS')
  ) {
    return `${e.message}; see 'lockstep help'`
  }
  return e instanceof Error ? e.message : String(e)
}

// ---- workbench ----

const clientOptions = {
  server: { type: 'string' },
  token: { type: 'string' },
  json: { type: 'boolean', default: false },
} as const

interface Credentials {
  url: string
  token?: string
}

function client(values: { server?: string; token?: string }): LockstepClient {
  let saved: Credentials | undefined
  try {
    saved = JSON.parse(readFileSync(join(defaultDataDir, 'cli.json'), 'utf8')) as Credentials
  } catch {
    saved = undefined
  }
  const url = values.server ?? process.env.LOCKSTEP_URL ?? saved?.url
  if (url === undefined) {
    throw new Error(
      "no scheduler to talk to: pass --server URL, set LOCKSTEP_URL, or run 'lockstep up' here first",
    )
  }
  return new LockstepClient({
    url,
    token: values.token ?? process.env.LOCKSTEP_TOKEN ?? saved?.token,
  })
}

async function submit(args: string[], out: Out): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      ...clientOptions,
      priority: { type: 'string' },
      follow: { type: 'boolean', default: false },
    },
  })
  if (positionals.length !== 1) throw new Error('give one file: lockstep submit FILE')
  const file = positionals[0]!
  const text = readFileSync(file, 'utf8')
  const c = client(values)
  const priority = values.priority === undefined ? undefined : Number(values.priority)
  let order: OrderFulfilment
  try {
    order = await c.submitDocument(text, { priority })
  } catch (e) {
    if (e instanceof ValidationError) {
      throw new ValidationError(
        e.issues.map((i) => ({ path: i.path, message: i.message.replace(/^body:/, `${file}:`) })),
        e.code,
      )
    }
    throw e
  }
  if (!values.follow) {
    out(
      values.json
        ? JSON.stringify(order)
        : `order ${order.orderId}: ${order.total} jobs, priority ${order.priority}`,
    )
    return 0
  }
  const final = await follow(c, order, values.json, out)
  return final.state === 'succeeded' ? 0 : 1
}

/** Follows an order to its end, drawing a progress bar (or printing events as JSON lines). */
async function follow(
  c: LockstepClient,
  order: OrderFulfilment,
  json: boolean,
  out: Out,
): Promise<OrderFulfilment> {
  let last = order
  const tty = process.stdout.isTTY && !json
  const onEvent = (e: StreamEvent) => {
    if (e.type === 'fulfilment') last = e.data as OrderFulfilment
    if (json) {
      out(JSON.stringify({ type: e.type, data: e.data }))
      return
    }
    if (e.type !== 'fulfilment') return
    const line = progress(last)
    if (tty) process.stdout.write(`\r${line}`)
  }
  // A stream that ends while the order still runs was cut (a proxy, a scheduler restart):
  // follow it again, waiting longer each time; give up after 30 tries that heard nothing.
  let quiet = 0
  for (let wait = 250; quiet < 30; wait = Math.min(wait * 2, 10_000)) {
    const before = last
    try {
      await c.follow(order.orderId, onEvent)
    } catch (e) {
      if (!(e instanceof LockstepError && e.code === 'UNAVAILABLE') && !(e instanceof TypeError)) {
        throw e
      }
    }
    if (last.state !== 'running') break
    if (last === before) quiet++
    else quiet = 0
    await new Promise((r) => setTimeout(r, wait))
  }
  if (tty) process.stdout.write('\n')
  if (!json) {
    out(progress(last))
    if (last.reason !== undefined) out(`  ${last.reason}`)
  }
  return last
}

function progress(f: OrderFulfilment): string {
  const width = 30
  const done = Math.round(f.progress * width)
  const c = f.counts
  return `${f.orderId.slice(0, 13)} [${'#'.repeat(done)}${'.'.repeat(width - done)}] ${c.succeeded}/${f.total} ok, ${c.running} running, ${c.failed} failed — ${f.state}`
}

async function status(args: string[], out: Out): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: clientOptions,
  })
  const c = client(values)
  if (positionals.length === 0) {
    const orders = await c.orders()
    if (values.json) out(JSON.stringify(orders))
    else if (orders.length === 0) out('no orders yet; submit one with: lockstep submit FILE')
    else for (const o of orders) out(progress(o))
    return 0
  }
  const id = positionals[0]!
  const [{ fulfilment }, jobs] = await Promise.all([c.order(id), c.jobs(id)])
  if (values.json) {
    out(JSON.stringify({ fulfilment, jobs }))
    return 0
  }
  out(progress(fulfilment))
  if (fulfilment.reason !== undefined) out(`  ${fulfilment.reason}`)
  for (const j of jobs) {
    const why = j.reason ?? (j.wait === undefined ? '' : JSON.stringify(j.wait))
    out(
      `  ${j.name.padEnd(16)} ${j.state.padEnd(10)} attempt ${j.attempt}${why === '' ? '' : `  ${why}`}`,
    )
  }
  return 0
}

async function cancel(args: string[], out: Out): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { ...clientOptions, job: { type: 'string' } },
  })
  const c = client(values)
  if (values.job !== undefined) {
    const job = await c.cancelJob(values.job)
    out(values.json ? JSON.stringify(job) : `job ${job.id}: ${job.state}`)
    return 0
  }
  if (positionals.length !== 1)
    throw new Error('give an order: lockstep cancel ORDER, or --job JOB')
  const f = await c.cancelOrder(positionals[0]!)
  out(values.json ? JSON.stringify(f) : progress(f))
  return 0
}

async function workers(args: string[], out: Out): Promise<number> {
  const { values } = parseArgs({ args, options: clientOptions })
  const list = await client(values).workers()
  if (values.json) out(JSON.stringify(list))
  else {
    for (const w of list) {
      const t = w.target
      out(
        `${t.id.padEnd(12)} ${t.kind.padEnd(10)} ${w.live ? 'live' : 'lost'}  ${w.running}/${t.availability} running  projects: ${t.projects.join(', ') || '-'}`,
      )
    }
  }
  return 0
}

async function logs(args: string[], out: Out): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: clientOptions,
  })
  if (positionals.length !== 1) throw new Error('give a job: lockstep logs JOB')
  const c = client(values)
  const detail = await c.job(positionals[0]!)
  if (values.json) {
    out(JSON.stringify(detail))
    return 0
  }
  for (const a of detail.attempts) {
    const why = [a.reason, a.exitCode === undefined ? undefined : `exit code ${a.exitCode}`]
      .filter((x) => x !== undefined)
      .join(', ')
    out(`attempt ${a.attempt} on ${a.target}: ${a.state}${why === '' ? '' : ` (${why})`}`)
    if (a.message !== undefined) out(a.message.replace(/^/gm, '  '))
  }
  if (detail.job.state === 'succeeded') {
    const dir = await mkdtemp(join(tmpdir(), 'lockstep-logs-'))
    try {
      await unpack(await c.productContent(productOf(detail.job)), dir)
      out(await readFile(join(dir, 'stdout'), 'utf8').catch(() => ''))
      const stderr = await readFile(join(dir, 'stderr'), 'utf8').catch(() => '')
      if (stderr !== '') process.stderr.write(stderr)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  }
  return 0
}

async function download(args: string[], out: Out): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { ...clientOptions, to: { type: 'string' } },
  })
  if (positionals.length !== 1) throw new Error('give an order: lockstep download ORDER')
  const c = client(values)
  const orderId = positionals[0]!
  const to = resolve(values.to ?? `lockstep-${orderId}`)
  const products = await c.products(orderId)
  for (const p of products) {
    await unpack(await c.productContent(p.productId), join(to, p.name))
  }
  out(
    values.json
      ? JSON.stringify({ dir: to, jobs: products.map((p) => p.name) })
      : `${products.length} products in ${to}`,
  )
  return 0
}

// ---- server and worker ----

interface Serving {
  url: string
  close(): Promise<void>
}

async function serve(options: {
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
  const workerToken = options.tokens.find((t) => t.role === 'worker')?.token
  const service = await SchedulerService.start({
    store,
    engine: { leaseMs: options.leaseMs ?? 30_000 },
    onFatal: (e) => {
      process.stderr.write(`lockstep server: a commit failed, stopping: ${describe(e)}\n`)
      process.exit(3)
    },
  })
  // Push targets: the initiator, in this process.
  const initiator = new InitiatorDriver(service, {
    dir: resolve(options.dataDir, 'initiator'),
    token: workerToken,
  })
  await initiator.open()
  const push = new PushLoop(service, [initiator], {
    onError: (e) => process.stderr.write(`lockstep server: push loop: ${describe(e)}\n`),
  })
  const server = await startServer({
    service,
    port: options.port,
    host: options.host,
    tokens: options.tokens,
    allowDownload: options.allowDownload,
    products: [initiator],
    ...(workerToken === undefined ? {} : { relayToken: workerToken }),
    log: options.log,
  })
  await push.start()
  return {
    url: server.url,
    async close() {
      await server.close()
      await push.close()
      await service.close()
    },
  }
}

async function server(args: string[], out: Out): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      port: { type: 'string', default: process.env.LOCKSTEP_PORT ?? '7300' },
      host: { type: 'string', default: '127.0.0.1' },
      tokens: { type: 'string', default: process.env.LOCKSTEP_TOKENS ?? '' },
      'allow-download': { type: 'boolean', default: false },
      'data-dir': { type: 'string', default: process.env.LOCKSTEP_DATA_DIR ?? defaultDataDir },
      'lease-ms': { type: 'string', default: '30000' },
    },
  })
  const tokens = parseTokens(values.tokens)
  const s = await serve({
    port: Number(values.port),
    host: values.host,
    tokens,
    allowDownload: values['allow-download'],
    dataDir: values['data-dir'],
    leaseMs: Number(values['lease-ms']),
    log: true,
  })
  out(
    `lockstep server listening on ${s.url}${tokens.length === 0 ? ' (open: no tokens configured)' : ''}`,
  )
  await untilSignal()
  await s.close()
  return 0
}

async function worker(args: string[], out: Out): Promise<number> {
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
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '0' },
      advertise: { type: 'string' },
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
    cacheBytes: values['cache-bytes'] === undefined ? undefined : Number(values['cache-bytes']),
    host: values.host,
    port: Number(values.port),
    advertiseUrl: values.advertise,
    log: (e) =>
      process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), ...e })}\n`),
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

// ---- up ----

async function up(args: string[], out: Out): Promise<number> {
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
  out(`Try: npx lockstep status   (credentials are in ${join(defaultDataDir, 'cli.json')})`)
  if (values.examples) await runExamples(running, out)
  out('Serving until Ctrl-C.')
  await untilSignal()
  await running.close()
  return 0
}

/** A scheduler and local workers under ./.lockstep, with fresh tokens; what `up` runs. */
export async function startLocal(
  port: number,
  count: number,
): Promise<Serving & { workers: WorkerAgent[]; token: string; workerToken: string }> {
  mkdirSync(defaultDataDir, { recursive: true })
  const secret = () => randomBytes(18).toString('base64url')
  const workbench = secret()
  const workerToken = secret()
  const tokens: TokenEntry[] = [
    { role: 'admin', name: 'you', token: workbench },
    { role: 'worker', name: 'local', token: workerToken },
  ]
  const s = await serve({
    port,
    host: '127.0.0.1',
    tokens,
    allowDownload: true,
    dataDir: defaultDataDir,
    log: false,
  })
  writeFileSync(
    join(defaultDataDir, 'cli.json'),
    JSON.stringify({ url: s.url, token: workbench }, null, 2),
    {
      mode: 0o600,
    },
  )
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
        cacheDir: resolve(defaultDataDir, 'workers', id),
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

/** Each local worker holds one part of the sample data set. */
function sampleData(i: number): Record<string, string> {
  const dir = resolve('examples', 'data')
  return { clinics: join(dir, `clinic-${i}.csv`) }
}

const examples = [
  { file: 'examples/federated-mean.yaml', central: () => centralOf('mean', { column: 'bmi' }) },
  {
    file: 'examples/federated-logreg.yaml',
    central: () =>
      centralOf('logreg', { features: ['age', 'bmi'], label: 'outcome', rate: 0.0005 }, 5),
  },
  {
    file: 'examples/secure-count.yaml',
    central: () => centralOf('count', { where: 'age > 60' }),
  },
  { file: 'examples/build.yaml', central: undefined },
  { file: 'examples/build.yaml', central: undefined },
]

/** The statistic over the three clinics' rows put together, as one machine would compute it. */
function centralOf(name: Analytic, args: AnalyticsArgs, steps = 1): Result {
  const parts = [1, 2, 3].map((i) =>
    parseCsv(readFileSync(sampleData(i).clinics!, 'utf8'), `clinic-${i}.csv`),
  )
  const table = { columns: parts[0]!.columns, rows: parts.flatMap((p) => p.rows) }
  return central(name, table, args, steps)
}

async function runExamples(
  running: { url: string; token: string; workerToken: string },
  out: Out,
): Promise<void> {
  const c = new LockstepClient({ url: running.url, token: running.token })
  for (const example of examples) {
    const order = await c.submitDocument(readFileSync(example.file, 'utf8'))
    out(`\n${example.file}`)
    const final = await follow(c, order, false, out)
    if (final.state !== 'succeeded') continue
    out(`  result:  ${await finalResult(c, order.orderId, running)}`)
    const cached = (await c.jobs(order.orderId)).filter((j) => j.attempt === 0).length
    if (cached > 0) out(`  ${cached} of ${final.total} jobs served from cache, not run again`)
    if (example.central !== undefined) out(`  central: ${JSON.stringify(example.central())}`)
  }
}

/** What the last job of an order produced: its result.json, or its standard output. */
async function finalResult(
  c: LockstepClient,
  orderId: string,
  tokens: { token: string; workerToken: string },
): Promise<string> {
  const jobs = await c.jobs(orderId)
  const last = jobs.reduce((a, b) => (b.index > a.index ? b : a))
  const holder = (await c.locate(last.id)).holders.find((h) => h.url !== undefined)
  if (holder === undefined) return '(no holder serves it)'
  // The initiator's products come from the scheduler, the others from the workers.
  const token = holder.url!.startsWith(c.url) ? tokens.token : tokens.workerToken
  const res = await fetch(`${holder.url}/products/${last.id}`, {
    headers: { authorization: `Bearer ${token}` },
  })
  const dir = await mkdtemp(join(tmpdir(), 'lockstep-result-'))
  try {
    await unpack(Readable.fromWeb(res.body as never), dir)
    const result = await readFile(join(dir, 'out', 'result.json'), 'utf8').catch(() => undefined)
    return (result ?? (await readFile(join(dir, 'stdout'), 'utf8'))).trim()
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

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
