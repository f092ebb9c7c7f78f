/**
 * The workbench commands: `submit` (with `--follow`), `status`, `cancel`, `workers`/`targets`
 * (with one target's attempts), `logs` and `download`. Each talks to a scheduler through a
 * {@link LockstepClient} found in its flags, the environment or the credentials `lockstep up`
 * saved, and prints lines or `--json`.
 */
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { LockstepClient } from '../client/client.ts'
import type { AttemptState, OrderFulfilment } from '../core/engine/fulfilment.ts'
import { ValidationError } from '../core/errors.ts'
import type { OrderSites, Target } from '../core/model.ts'
import { formatSize, parseSize } from '../core/sizes.ts'
import { credentialsPath, readCredentials } from './credentials.ts'
import type { Out } from './output.ts'

const clientOptions = {
  server: { type: 'string' },
  token: { type: 'string' },
  json: { type: 'boolean', default: false },
} as const

/**
 * The scheduler named by --server/--token, else LOCKSTEP_URL/LOCKSTEP_TOKEN, else the credentials
 * `lockstep up` saved in the data directory. A saved token goes only to the saved URL.
 */
function client(values: { server?: string; token?: string }): LockstepClient {
  const saved = readCredentials()
  const url = values.server ?? process.env.LOCKSTEP_URL ?? saved?.url
  if (url === undefined) {
    throw new Error(
      `no scheduler to talk to: pass --server URL, set LOCKSTEP_URL, or run 'lockstep up' first (it saves ${credentialsPath()})`,
    )
  }
  return new LockstepClient({
    url,
    token:
      values.token ?? process.env.LOCKSTEP_TOKEN ?? (url === saved?.url ? saved.token : undefined),
  })
}

/**
 * `lockstep submit FILE [--priority N] [--min-sites N] [--wait-for-sites-ms MS] [--follow]`:
 * exits 1 when a followed order does not succeed.
 */
export async function submit(args: string[], out: Out): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      ...clientOptions,
      priority: { type: 'string' },
      'min-sites': { type: 'string' },
      'wait-for-sites-ms': { type: 'string' },
      follow: { type: 'boolean', default: false },
    },
  })
  if (positionals.length !== 1) throw new Error('give one file: lockstep submit FILE')
  const file = positionals[0]!
  const text = readFileSync(file, 'utf8')
  const c = client(values)
  const number = (text: string | undefined) => (text === undefined ? undefined : Number(text))
  const options = {
    priority: number(values.priority),
    minSites: number(values['min-sites']),
    waitForSitesMs: number(values['wait-for-sites-ms']),
  }
  let order: OrderFulfilment
  try {
    order = await c.submitDocument(text, options)
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

/**
 * Follows an order to its end, drawing a progress bar (or printing events as JSON lines). The
 * SDK's follow resumes a cut stream where it was cut, so no event is printed twice.
 */
export async function follow(
  c: LockstepClient,
  order: OrderFulfilment,
  json: boolean,
  out: Out,
): Promise<OrderFulfilment> {
  let last = order
  const tty = process.stdout.isTTY && !json
  for await (const e of c.follow(order.orderId)) {
    if (e.type === 'fulfilment') last = e.fulfilment
    if (json)
      out(JSON.stringify({ type: e.type, data: e.type === 'fulfilment' ? e.fulfilment : e }))
    else if (e.type === 'fulfilment' && tty) process.stdout.write(`\r${progress(last)}`)
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

/** `lockstep status [ORDER]`: every order's progress, or one order's jobs and why they wait. */
export async function status(args: string[], out: Out): Promise<number> {
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
  const [{ order, fulfilment }, jobs] = await Promise.all([c.order(id), c.jobs(id)])
  if (values.json) {
    out(JSON.stringify({ fulfilment, jobs }))
    return 0
  }
  out(progress(fulfilment))
  if (fulfilment.reason !== undefined) out(`  ${fulfilment.reason}`)
  if (order.sites !== undefined) out(`  ${sitesLine(order.sites)}`)
  for (const j of jobs) {
    const why = j.reason ?? j.wait?.text ?? ''
    out(
      `  ${j.name.padEnd(16)} ${j.state.padEnd(10)} attempt ${j.attempt}${why === '' ? '' : `  ${why}`}`,
    )
    for (const url of j.artefacts ?? []) out(`    artefact ${url}`)
  }
  return 0
}

/** The sites an artifact's order was bound over, and those it runs without. */
function sitesLine(sites: OrderSites): string {
  const bound = `bound over ${sites.bound.length} sites: ${sites.bound.join(', ')}`
  if (sites.offline.length === 0) return bound
  return `${bound}; without ${sites.offline.length} offline: ${sites.offline.join(', ')} (minSites ${sites.minSites})`
}

/** `lockstep forget TARGET`: a target that left or was lost is no longer a site (admins). */
export async function forget(args: string[], out: Out): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: clientOptions,
  })
  if (positionals.length !== 1) throw new Error('give one target: lockstep forget TARGET')
  await client(values).forgetTarget(positionals[0]!)
  out(`forgot ${positionals[0]!}: it is no longer a site of the projects it held`)
  return 0
}

/** `lockstep cancel ORDER | --job JOB`. */
export async function cancel(args: string[], out: Out): Promise<number> {
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

/**
 * `lockstep workers | targets [NAME] [--state S] [--limit N]`: each target, whether it is live,
 * and its load; given a name, that target and its attempts, newest first.
 */
export async function workers(args: string[], out: Out): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { ...clientOptions, state: { type: 'string' }, limit: { type: 'string' } },
  })
  if (positionals.length > 1) throw new Error('give at most one target: lockstep targets [NAME]')
  const c = client(values)
  if (positionals.length === 1) return target(c, positionals[0]!, values, out)
  const list = await c.workers()
  if (values.json) out(JSON.stringify(list))
  else for (const w of list) out(targetLine(w))
  return 0
}

/** One target, as `lockstep targets` lists it. */
function targetLine(w: {
  target: Target
  live: boolean
  running: number
  problem?: string
}): string {
  const t = w.target
  const line = `${t.id.padEnd(12)} ${t.kind.padEnd(10)} ${w.live ? 'live' : 'lost'}  ${w.running}/${t.availability} running  projects: ${t.projects.join(', ') || '-'}`
  return w.problem === undefined ? line : `${line}\n${''.padEnd(13)}problem: ${w.problem}`
}

const attemptStates: readonly AttemptState[] = ['running', 'succeeded', 'failed', 'cancelled']

/** `lockstep targets NAME`: the target's line, then one line per attempt on it, newest first. */
async function target(
  c: LockstepClient,
  id: string,
  values: { json: boolean; state?: string | undefined; limit?: string | undefined },
  out: Out,
): Promise<number> {
  const state = values.state as AttemptState | undefined
  if (state !== undefined && !attemptStates.includes(state)) {
    throw new Error(`--state is one of ${attemptStates.join(', ')}`)
  }
  const limit = values.limit === undefined ? undefined : Number(values.limit)
  // The attempts first: an unknown target is TARGET_NOT_FOUND, said by the server.
  const attempts = await c.fulfilments(id, {
    ...(limit === undefined ? {} : { limit }),
    ...(state === undefined ? {} : { state }),
  })
  const status = (await c.workers()).find((w) => w.target.id === id)
  if (values.json) {
    out(JSON.stringify({ target: status, attempts }))
    return 0
  }
  if (status !== undefined) out(targetLine(status))
  if (attempts.length === 0) {
    out(state === undefined ? '  no attempts yet' : `  no ${state} attempts`)
    return 0
  }
  const now = Date.now()
  for (const a of attempts) {
    const unit = a.unit === undefined ? '-' : `${a.unit.name} ${a.unit.phase}`
    const started = a.transitions[0]?.at ?? now
    const why = [a.reason, a.exitCode === undefined ? undefined : `exit code ${a.exitCode}`]
      .filter((x) => x !== undefined)
      .join(', ')
    out(
      `  ${a.state.padEnd(10)} ${a.jobId}  attempt ${a.attempt}  ${unit.padEnd(24)} ${age(now - started).padStart(4)}${why === '' ? '' : `  ${why}`}`,
    )
  }
  return 0
}

/** A duration for people, in its largest unit: `42s`, `7m`, `3h`, `12d`. */
function age(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000))
  if (s < 60) return `${s}s`
  if (s < 3600) return `${Math.floor(s / 60)}m`
  if (s < 86_400) return `${Math.floor(s / 3600)}h`
  return `${Math.floor(s / 86_400)}d`
}

/** `lockstep logs JOB`: its output, or why its attempts failed. */
export async function logs(args: string[], out: Out): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: clientOptions,
  })
  if (positionals.length !== 1) throw new Error('give a job: lockstep logs JOB')
  const c = client(values)
  if (values.json) {
    out(JSON.stringify(await c.job(positionals[0]!)))
    return 0
  }
  const logs = await c.logs(positionals[0]!)
  for (const a of logs.attempts) {
    const why = [a.reason, a.exitCode === undefined ? undefined : `exit code ${a.exitCode}`]
      .filter((x) => x !== undefined)
      .join(', ')
    out(`attempt ${a.attempt} on ${a.target}: ${a.state}${why === '' ? '' : ` (${why})`}`)
    if (a.message !== undefined) out(a.message.replace(/^/gm, '  '))
    for (const url of a.artefacts ?? []) out(`  artefact ${url}`)
  }
  if (logs.job.state === 'succeeded' && logs.stdout === undefined) {
    // A Pod keeps no product: what it made is in its artefacts, its output in the cluster's logs.
    out(
      `(an image job leaves no product; its output is in the logs of its Pod on ${logs.attempts.at(-1)?.target ?? 'its cluster'})`,
    )
  } else if (logs.stdout !== undefined) {
    out(logs.stdout)
    if (logs.stderr !== undefined && logs.stderr !== '') process.stderr.write(logs.stderr)
  }
  return 0
}

/** The tar reader, loaded by the commands that unpack products only: the others start faster. */
const archive = () => import('../runner/archive.ts')

/**
 * `lockstep download ORDER [--to DIR] [--max-bytes SIZE]`: its products, one folder per job. A
 * product that would unpack to more than `--max-bytes` (10 GiB unless given) is refused, and so
 * is one that names a path outside its folder or holds a link or a device: the download stops
 * there, naming the product and the entry, and leaves no partial folder for it.
 */
export async function download(args: string[], out: Out): Promise<number> {
  const { DEFAULT_MAX_UNPACKED_BYTES } = await archive()
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      ...clientOptions,
      to: { type: 'string' },
      'max-bytes': { type: 'string', default: formatSize(DEFAULT_MAX_UNPACKED_BYTES) },
    },
  })
  if (positionals.length !== 1) throw new Error('give an order: lockstep download ORDER')
  const maxBytes = parseSize(values['max-bytes'], '--max-bytes')
  const c = client(values)
  const orderId = positionals[0]!
  const { dir, jobs, missing } = await c.download(orderId, values.to ?? `lockstep-${orderId}`, {
    maxBytes,
    capName: '--max-bytes',
  })
  out(
    values.json
      ? JSON.stringify({ dir, jobs, missing })
      : `${jobs.length} products in ${dir}` +
          (missing.length === 0 ? '' : `; no live target holds ${missing.join(', ')}`),
  )
  return 0
}
