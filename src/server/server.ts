/**
 * The scheduler's HTTP API, version 1. Workbenches submit, follow and cancel; workers register
 * and heartbeat (a long poll). Every answer that reports a change comes after the change is
 * stored. `/openapi.json` describes it all; `/metrics` speaks Prometheus.
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { z } from 'zod'
import { classify, readDocument } from '../core/document.ts'
import type { EngineEvent } from '../core/engine/events.ts'
import { LockstepError, ValidationError } from '../core/errors.ts'
import { productOf } from '../core/model.ts'
import type { Order } from '../core/model.ts'
import { orderOptionsSchema } from '../core/order.ts'
import { parseInput } from '../core/schema.ts'
import type { SchedulerService } from '../service/service.ts'
import type { ProductSource } from '../targets/target-driver.ts'
import { Auth } from './auth.ts'
import type { Caller, TokenEntry } from './auth.ts'
import { Router } from './http.ts'
import type { Log, Request } from './http.ts'
import { Metrics } from './metrics.ts'
import { openApiDocument } from './openapi.ts'

/** Options of {@link startServer}. */
export interface ServerOptions {
  service: SchedulerService
  /** @default 7300 */
  port?: number
  /** @default '127.0.0.1' */
  host?: string
  /** No tokens: the server is open to anyone who can reach it. */
  tokens?: readonly TokenEntry[]
  /** The largest request body accepted. @default 16 MiB */
  maxBodyBytes?: number
  /** Lets workbenches download an order's products (off by default, as the seed says). */
  allowDownload?: boolean
  /** The longest heartbeat long poll. @default 30000 */
  maxWaitMs?: number
  /** One JSON object per line. @default silent */
  log?: Log
  /** In-process targets whose products the API serves at `/v1/targets/:id/products/:product`. */
  products?: readonly ProductSource[]
  /** The worker token the relay fetches products from workers with. */
  relayToken?: string
}

/** A running server. */
export interface RunningServer {
  url: string
  port: number
  close(): Promise<void>
}

const submitSchema = z.strictObject({
  /** An artifact to bind and order. */
  artifact: z.unknown().optional(),
  /** A packet to store and order once. */
  packet: z.unknown().optional(),
  /** A stored packet to order, by id or name. */
  packetRef: z.string().optional(),
  options: orderOptionsSchema.optional(),
})

export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const service = options.service
  const auth = new Auth(options.tokens ?? [])
  const log: Log = options.log ?? (() => {})
  const metrics = new Metrics(service)
  const maxWaitMs = options.maxWaitMs ?? 30_000
  const router = new Router()
  const streams = new Set<() => void>()

  /** Workbenches download products only from a server that allows it; workers always may. */
  const mayDownload = (caller: Caller): void => {
    if (caller.role === 'workbench' && options.allowDownload !== true) {
      throw new LockstepError(
        'DOWNLOAD_DISABLED',
        'this server does not allow downloading products; start it with --allow-download',
      )
    }
  }

  // Every workbench token may read every order (a team sees its queue); only the owner or an
  // admin may change one.
  const mayChange = (caller: Caller, order: Order, what: string): void => {
    if (caller.role !== 'admin' && order.owner !== caller.name) {
      throw new LockstepError(
        'FORBIDDEN',
        `order ${order.id} belongs to ${order.owner}; only its owner or an admin may ${what}`,
      )
    }
  }

  router.add('GET', '/healthz', () => ({ body: { ok: true } }))
  router.add('GET', '/metrics', () => ({
    body: metrics.render(),
    headers: { 'content-type': 'text/plain; version=0.0.4' },
  }))
  router.add('GET', '/openapi.json', () => ({ body: openApiDocument() }))

  // ---- workbench ----

  router.add('POST', '/v1/packets', async (req) => {
    auth.check(req, ['workbench'])
    const record = await service.createPacket(await documentBody(req))
    return { status: 201, body: { id: record.id, name: record.name, createdAt: record.createdAt } }
  })

  router.add('POST', '/v1/orders', async (req) => {
    const caller = auth.check(req, ['workbench'])
    const yaml = isYaml(req)
    const body = yaml
      ? { ...submissionOf(await documentBody(req)), options: optionsFromQuery(req) }
      : parseInput(submitSchema, await req.json())
    const given = [body.artifact, body.packet, body.packetRef].filter((x) => x !== undefined)
    if (given.length !== 1) {
      throw new ValidationError([
        { path: '', message: 'give exactly one of artifact, packet or packetRef' },
      ])
    }
    const orderOptions = { ...body.options }
    if (orderOptions.owner !== undefined && orderOptions.owner !== caller.name) {
      if (caller.role !== 'admin') {
        throw new LockstepError('FORBIDDEN', 'only an admin may submit on behalf of another owner')
      }
    } else orderOptions.owner = caller.name
    const fulfilment =
      body.artifact !== undefined
        ? await service.submitArtifact(body.artifact, orderOptions, caller.name)
        : body.packet !== undefined
          ? await service.submitPacket(body.packet, orderOptions, caller.name)
          : await service.orderPacket(body.packetRef!, orderOptions, caller.name)
    return { status: 201, body: fulfilment }
  })

  router.add('GET', '/v1/orders', async (req) => {
    auth.check(req, ['workbench'])
    const limit = Math.min(1000, Math.max(1, Number(req.query.get('limit') ?? 100) || 100))
    return { body: await service.listOrders(limit) }
  })

  router.add('GET', '/v1/orders/:id', async (req) => {
    auth.check(req, ['workbench'])
    const order = await service.order(req.params.id!)
    return { body: { order, fulfilment: await service.fulfilment(order.id) } }
  })

  router.add('GET', '/v1/orders/:id/jobs', async (req) => {
    auth.check(req, ['workbench'])
    return { body: await service.jobs(req.params.id!) }
  })

  router.add('GET', '/v1/jobs/:id', async (req) => {
    auth.check(req, ['workbench'])
    return { body: await service.jobDetail(req.params.id!) }
  })

  router.add('POST', '/v1/orders/:id/cancel', async (req) => {
    const caller = auth.check(req, ['workbench'])
    const order = await service.order(req.params.id!)
    mayChange(caller, order, 'cancel it')
    return { body: await service.cancelOrder(order.id, `cancelled by ${caller.name}`) }
  })

  router.add('POST', '/v1/jobs/:id/cancel', async (req) => {
    const caller = auth.check(req, ['workbench'])
    const job = await service.job(req.params.id!)
    const order = await service.order(job.orderId)
    mayChange(caller, order, 'cancel its jobs')
    return { body: await service.cancelJob(job.id, `cancelled by ${caller.name}`) }
  })

  router.add('GET', '/v1/orders/:id/products', async (req) => {
    const caller = auth.check(req, ['workbench'])
    mayDownload(caller)
    const order = await service.order(req.params.id!)
    const jobs = await service.jobs(order.id)
    return {
      body: jobs
        .filter((j) => j.state === 'succeeded')
        .map((j) => ({
          jobId: j.id,
          productId: productOf(j),
          name: j.name,
          holders: service.holders(productOf(j)),
        })),
    }
  })

  /** Server-sent events: every stored event, or one order's until it ends. */
  router.add('GET', '/v1/events', async (req) => {
    const caller = auth.check(req, ['workbench'])
    const orderId = req.query.get('order') ?? undefined
    if (orderId !== undefined) await service.order(orderId)
    else if (caller.role !== 'admin') {
      throw new LockstepError('FORBIDDEN', 'only an admin may follow every order; add ?order=ID')
    }
    const res = req.res
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
    })
    const write = (type: string, data: unknown) =>
      res.write(`event: ${type}\ndata: ${JSON.stringify(data)}\n\n`)
    res.write('retry: 1000\n\n')
    let ended = false
    const end = () => {
      if (ended) return
      ended = true
      off()
      streams.delete(end)
      res.end()
    }
    const off = service.on((e: EngineEvent) => {
      const of = 'orderId' in e ? e.orderId : e.type === 'order:submitted' ? e.order.id : undefined
      if (orderId !== undefined && of !== orderId) return
      write(e.type, e.type === 'order:submitted' ? { orderId: e.order.id, jobs: e.jobs.length } : e)
      if (orderId !== undefined && (e.type.startsWith('job:') || e.type.startsWith('order:'))) {
        // The stream ends with the stored event that ends the order, never before it.
        const last = /^order:(succeeded|failed|cancelled)$/.test(e.type)
        void service.fulfilment(orderId).then((f) => {
          if (ended) return
          write('fulfilment', last ? { ...f, state: e.type.slice(6) } : f)
          if (last) end()
        })
      }
    })
    streams.add(end)
    req.signal.addEventListener('abort', end, { once: true })
    if (orderId !== undefined) {
      const f = await service.fulfilment(orderId)
      write('fulfilment', f)
      if (f.state !== 'running') end()
    }
    return undefined
  })

  // ---- workers ----

  router.add('POST', '/v1/workers', async (req) => {
    auth.check(req, ['worker'])
    const target = await service.registerTarget((await req.json()) as never)
    return { status: 201, body: target }
  })

  router.add('POST', '/v1/workers/:id/heartbeat', async (req) => {
    auth.check(req, ['worker'])
    const body = (await req.json()) as { waitMs?: number } | null
    if (body !== null && typeof body === 'object' && typeof body.waitMs === 'number') {
      body.waitMs = Math.min(body.waitMs, maxWaitMs)
    }
    const started = performance.now()
    const reply = await service.heartbeat(req.params.id!, body as never, req.signal)
    metrics.heartbeat((performance.now() - started) / 1000, reply.assignments.length)
    return { body: reply }
  })

  router.add('DELETE', '/v1/workers/:id', async (req) => {
    auth.check(req, ['worker'])
    await service.removeTarget(req.params.id!)
    return { status: 204, body: '' }
  })

  router.add('GET', '/v1/workers', (req) => {
    auth.check(req, ['workbench', 'worker'])
    return { body: service.targets() }
  })

  const sources = new Map((options.products ?? []).map((p) => [p.id, p]))
  router.add('GET', '/v1/targets/:target/products/:id', async (req) => {
    const caller = auth.check(req, ['worker', 'workbench'])
    mayDownload(caller)
    const source = sources.get(req.params.target!)
    if (source === undefined) {
      throw new LockstepError(
        'PRODUCT_NOT_FOUND',
        `target ${req.params.target} keeps no products in the scheduler`,
      )
    }
    await source.send(req.params.id!, req.res)
    return undefined
  })

  /**
   * A product's content, relayed by the scheduler: for workers that cannot reach the peer holding
   * it, and for downloads (when the server allows them).
   */
  router.add('GET', '/v1/products/:id/content', async (req) => {
    const caller = auth.check(req, ['worker', 'workbench'])
    mayDownload(caller)
    const id = req.params.id!
    for (const source of sources.values()) {
      if (source.holds(id)) {
        await source.send(id, req.res)
        return undefined
      }
    }
    const errors: string[] = []
    for (const holder of service.holders(id)) {
      if (holder.url === undefined || sources.has(holder.target)) continue
      try {
        const token = options.relayToken
        const upstream = await fetch(`${holder.url}/products/${encodeURIComponent(id)}`, {
          headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
          signal: req.signal,
        })
        if (!upstream.ok || upstream.body === null) throw new Error(`HTTP ${upstream.status}`)
        req.res.writeHead(200, { 'content-type': 'application/octet-stream' })
        for await (const chunk of upstream.body as unknown as AsyncIterable<Uint8Array>) {
          req.res.write(chunk)
        }
        req.res.end()
        return undefined
      } catch (e) {
        if (req.res.headersSent) throw e
        errors.push(`${holder.target}: ${(e as Error).message}`)
      }
    }
    throw new LockstepError(
      'PRODUCT_NOT_FOUND',
      `no live target serves product ${id}${errors.length > 0 ? ` (${errors.join('; ')})` : ''}`,
    )
  })

  router.add('GET', '/v1/products/:id', (req) => {
    auth.check(req, ['worker', 'workbench'])
    const holders = service.holders(req.params.id!)
    if (holders.length === 0) {
      throw new LockstepError('PRODUCT_NOT_FOUND', `no live target holds product ${req.params.id}`)
    }
    return { body: { productId: req.params.id, holders } }
  })

  const server = createServer((req, res) => {
    router
      .handle(req, res, { maxBodyBytes: options.maxBodyBytes ?? 16 * 1024 * 1024, log })
      .catch((error: unknown) => {
        // Only a failure while streaming a response gets here: the status is already sent.
        log({ level: 'error', msg: 'response failed', error: String(error) })
        res.destroy()
      })
  })
  server.keepAliveTimeout = 65_000
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 7300, options.host ?? '127.0.0.1', () => resolve())
  })
  const port = (server.address() as AddressInfo).port
  const host = options.host ?? '127.0.0.1'
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`
  for (const source of sources.values()) {
    service.setTargetUrl(source.id, `${url}/v1/targets/${encodeURIComponent(source.id)}`)
  }
  log({ level: 'info', msg: 'listening', url, auth: auth.open ? 'open' : 'tokens' })
  return {
    url,
    port,
    async close() {
      for (const end of [...streams]) end()
      await new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
    },
  }
}

function isYaml(req: Request): boolean {
  return /yaml/i.test(req.headers['content-type'] ?? '')
}

/** A packet or an artifact, sent as YAML or JSON. */
async function documentBody(req: Request): Promise<unknown> {
  return isYaml(req) ? readDocument(await req.text(), 'body') : req.json()
}

/** What a YAML body holds, as the fields of a submission. */
function submissionOf(data: unknown): { artifact?: unknown; packet?: unknown } {
  const kind = classify(data).kind
  return kind === 'artifact' ? { artifact: data } : { packet: data }
}

/** Order options given as query parameters next to a YAML body. */
function optionsFromQuery(req: Request): z.input<typeof orderOptionsSchema> {
  const out: Record<string, unknown> = {}
  const priority = req.query.get('priority')
  if (priority !== null) out.priority = Number(priority)
  const owner = req.query.get('owner')
  if (owner !== null) out.owner = owner
  return parseInput(orderOptionsSchema, out, 'query')
}
