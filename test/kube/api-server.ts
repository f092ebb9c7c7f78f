/**
 * A small Kubernetes API server for the tests: Pods only, in memory, plain HTTP on 127.0.0.1.
 * No cluster runs on the machines that test Lockstep, so the Kubernetes target's tests, its
 * end-to-end tests and its benchmark talk to this one instead, through the real
 * `@kubernetes/client-node` 1.4 and the real `kubectl`, unchanged. Never shipped.
 *
 * What it covers, with the real server's shapes and status codes:
 * - discovery: `/version`, `/api`, `/api/v1`, `/apis` (no groups); anything else is a 404 Status,
 *   which kubectl accepts for get, watch and delete (it asks for no OpenAPI document for those);
 * - Pods in a namespace: create (validated as the real server does for names, labels,
 *   annotations, containers, env names, volume mounts, restart policy: 422 Invalid), get, list,
 *   delete (graceful with `deleteGraceMs`, with a `preconditions.uid`), `pods/{name}/log`;
 *   list and watch across namespaces;
 * - label selectors (`k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`, `k notin (a,b)`) and field
 *   selectors (`metadata.name`, `metadata.namespace`, `status.phase`, `spec.nodeName`);
 * - watch (`watch=true|1`): replays the history after `resourceVersion`, then streams; a version
 *   older than the compacted history gets an ERROR event with a 410 Expired Status and the
 *   stream ends; `timeoutSeconds`, BOOKMARKs on request, `sendInitialEvents`;
 * - `Table` answers when asked for (`kubectl get` prints its columns from them);
 * - every error is a `Status`; bearer tokens are checked once `kubeconfig({ token })` named one.
 *
 * What it leaves out: other kinds (every namespace exists), PATCH, PUT, deletecollection, list
 * paging (`limit` is ignored: one page), protobuf, TLS, admission, scheduling (a Pod is bound to
 * one node as it is created) and a kubelet of its own: a test, or the `kubelet` option, moves
 * each Pod with `run`, `succeed`, `fail`, ….
 *
 * Invariants the tests hold it to:
 * - one resourceVersion counter, bumped by every change, and every change is one history event;
 * - a watch from version V gets every matching event after V once and in order, or an ERROR 410
 *   when some of them were forgotten;
 * - what it hands out is a copy: a test cannot change a stored Pod behind its back.
 */
import { randomBytes, randomUUID } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { resolve as resolvePath } from 'node:path'
import type { V1ObjectMeta, V1Pod, V1PodSpec, V1PodStatus } from '@kubernetes/client-node'

/** A type as it travels in JSON: the client's `Date` fields are RFC 3339 strings on the wire. */
type Wire<T> = T extends Date
  ? string
  : T extends (infer U)[]
    ? Wire<U>[]
    : T extends object
      ? { [K in keyof T]: Wire<T[K]> }
      : T

/** A Pod as the server stores and sends it: the API's JSON, with the fields it always sets. */
export type Pod = Omit<Wire<V1Pod>, 'metadata' | 'spec' | 'status'> & {
  metadata: Wire<V1ObjectMeta> & {
    name: string
    namespace: string
    uid: string
    resourceVersion: string
    creationTimestamp: string
  }
  spec: Wire<V1PodSpec>
  status: Wire<V1PodStatus>
}
type ContainerState = NonNullable<NonNullable<Pod['status']['containerStatuses']>[number]['state']>

/** How a test sets up the server. */
export interface KubeApiServerOptions {
  /**
   * Called once for each Pod created, as a kubelet would see it, before the create is answered:
   * it may move the Pod on (`kube.run(ns, name); kube.succeed(ns, name)`), at once or later.
   * A throw answers the create with 500 (the Pod stays created).
   * @default none (tests move Pods themselves)
   */
  kubelet?: (pod: Pod, kube: KubeApiServer) => void
  /**
   * How long a deleted Pod lingers with `metadata.deletionTimestamp` set before it is gone
   * (graceful deletion); 0 removes it at once. A terminal Pod, or a delete with
   * `gracePeriodSeconds: 0`, goes at once whatever this says; any other grace asked lasts this.
   * @default 0
   */
  deleteGraceMs?: number
  /** How many events the watch history keeps; older ones are forgotten as by `compact()`. @default 10000 */
  historyLimit?: number
}

/** One request the server saw. */
export interface KubeRequest {
  method: string
  /** The path without the query, e.g. `/api/v1/namespaces/default/pods`. */
  path: string
  /** The query string without `?`, still encoded. */
  query: string
}

/** A Kubernetes `Status`: the body of every error answer, and of a watch's ERROR event. */
export interface KubeStatus {
  kind: 'Status'
  apiVersion: 'v1'
  metadata: Record<string, never>
  status: 'Failure'
  message: string
  reason: string
  code: number
  details?: { name?: string; kind?: string; causes?: Cause[] }
}
interface Cause {
  reason: string
  message: string
  field: string
}

type EventType = 'ADDED' | 'MODIFIED' | 'DELETED'
interface HistoryEvent {
  version: number
  type: EventType
  pod: Pod
}
interface Watch {
  res: ServerResponse
  matches: (pod: Pod) => boolean
  table: boolean
  bookmarks: boolean
}
interface Waiter {
  check(): boolean
  settle(error?: Error): void
}

const REASONS: Record<number, string> = {
  ...{ 400: 'BadRequest', 401: 'Unauthorized', 403: 'Forbidden', 404: 'NotFound' },
  ...{ 405: 'MethodNotAllowed', 409: 'Conflict', 410: 'Expired', 413: 'RequestEntityTooLarge' },
  ...{ 422: 'Invalid', 429: 'TooManyRequests', 500: 'InternalError', 503: 'ServiceUnavailable' },
  504: 'Timeout',
}

/** A Status as the real server words it; the reason follows the code unless given. */
export function kubeStatus(
  code: number,
  message: string,
  reason = REASONS[code] ?? 'Unknown',
  details?: KubeStatus['details'],
): KubeStatus {
  const status = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure' } as const
  return { ...status, message, reason, code, ...(details ? { details } : {}) }
}

/** An error answer, thrown through the request handler. */
class Refusal extends Error {
  constructor(readonly status: KubeStatus) {
    super(status.message)
  }
}
const refuse = (...args: Parameters<typeof kubeStatus>) => new Refusal(kubeStatus(...args))
const notFound = (name: string) =>
  refuse(404, `pods "${name}" not found`, 'NotFound', { name, kind: 'pods' })

const NODE = 'lockstep-node-1'
const timestamp = (ms = Date.now()) => new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z')
const terminal = (pod: Pod) => pod.status.phase === 'Succeeded' || pod.status.phase === 'Failed'
const keyOf = (pod: Pod) => `${pod.metadata.namespace}/${pod.metadata.name}`
const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v)

/** An in-memory Kubernetes API server for Pods; see the head of this file. */
export class KubeApiServer {
  /** `http://127.0.0.1:PORT`, the server's address for a kubeconfig. */
  readonly url: string
  /** The port it listens on (the same after `resume()`). */
  readonly port: number
  /** Every request seen, in order: for assertions such as how many creates were sent. */
  readonly requests: KubeRequest[] = []

  readonly #server: Server
  readonly #kubelet: KubeApiServerOptions['kubelet']
  readonly #graceMs: number
  readonly #historyLimit: number
  readonly #pods = new Map<string, Pod>()
  readonly #logs = new Map<string, string>()
  #version = 0
  /** Events up to this version are forgotten: a watch from an older version gets 410. */
  #compactedTo = 0
  #history: HistoryEvent[] = []
  readonly #watches = new Set<Watch>()
  readonly #tokens = new Set<string>()
  readonly #failures: { count: number; status: number; method?: string; path?: string }[] = []
  readonly #timers = new Set<NodeJS.Timeout>()
  #connections = 0
  readonly #waiters = new Set<Waiter>()
  /** The Pods counted as non-terminal, and the counts per namespace: now and the highest. */
  readonly #counted = new Set<string>()
  readonly #nonTerminal = new Map<string, { now: number; max: number }>()
  #podIps = 0
  #paused = false
  #closed = false

  private constructor(server: Server, port: number, options: KubeApiServerOptions) {
    this.#server = server
    this.port = port
    this.url = `http://127.0.0.1:${port}`
    this.#kubelet = options.kubelet
    this.#graceMs = options.deleteGraceMs ?? 0
    this.#historyLimit = options.historyLimit ?? 10_000
    server.on('request', (req: IncomingMessage, res: ServerResponse) => this.#handle(req, res))
    server.on('connection', () => this.#connections++)
  }

  /**
   * Starts a server on 127.0.0.1 and a free port below the kernel's ephemeral range where there
   * is room for one: no client connection and no server on port 0 is ever given such a port, so
   * a paused server finds its port free again when it resumes.
   */
  static async start(options: KubeApiServerOptions = {}): Promise<KubeApiServer> {
    const server = createServer()
    await listenBelowEphemeral(server)
    return new KubeApiServer(server, (server.address() as AddressInfo).port, options)
  }

  /**
   * Writes a kubeconfig (cluster, user with a bearer token, context with the namespace) into
   * `dir`, as `file` (@default 'kubeconfig'), and answers its path. Naming a `token` makes the
   * server require it (or another one named so) from then on; without, any token passes. The
   * cluster is `insecure-skip-tls-verify`: client-node 1.4 refuses an `http:` server otherwise.
   */
  kubeconfig(
    dir: string,
    options: { namespace?: string; context?: string; token?: string; file?: string } = {},
  ): string {
    const { namespace = 'default', context = 'lockstep-test', token, file = 'kubeconfig' } = options
    if (token !== undefined) this.#tokens.add(token)
    const path = resolvePath(dir, file)
    const config = {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [
        { name: context, cluster: { server: this.url, 'insecure-skip-tls-verify': true } },
      ],
      users: [{ name: context, user: { token: token ?? 'lockstep-test-token' } }],
      contexts: [{ name: context, context: { cluster: context, user: context, namespace } }],
      'current-context': context,
    }
    writeFileSync(path, JSON.stringify(config, null, 2), { mode: 0o600 })
    return path
  }

  /** The current Pods (copies), of one namespace or of all, by namespace and name. */
  pods(namespace?: string): Pod[] {
    return [...this.#pods.values()]
      .filter((p) => namespace === undefined || p.metadata.namespace === namespace)
      .sort((a, b) => (keyOf(a) < keyOf(b) ? -1 : 1))
      .map((p) => structuredClone(p))
  }

  /** One Pod (a copy), or undefined. */
  pod(namespace: string, name: string): Pod | undefined {
    const pod = this.#pods.get(`${namespace}/${name}`)
    return pod && structuredClone(pod)
  }

  /** The kubelet starts it: phase Running, every container running and ready, `startTime`. */
  run(ns: string, name: string): void {
    this.#move(ns, name, (pod, now) => {
      pod.status.phase = 'Running'
      pod.status.startTime ??= now
      pod.status.podIP ??= `10.244.0.${(this.#podIps++ % 250) + 2}`
      setContainers(pod, () => ({ running: { startedAt: now } }), true)
      setConditions(pod, now, true)
    })
  }

  /** It ends well: phase Succeeded, every container terminated, exit code 0, reason Completed. */
  succeed(ns: string, name: string, options: { message?: string } = {}): void {
    this.#end(ns, name, 'Succeeded', { exitCode: 0, reason: 'Completed', ...options })
  }

  /** It ends badly: phase Failed, every container terminated so (reason @default 'Error'). */
  fail(
    ns: string,
    name: string,
    options: { exitCode: number; reason?: string; message?: string },
  ): void {
    this.#end(ns, name, 'Failed', { reason: 'Error', ...options })
  }

  /** It cannot start: phase Pending, containers waiting (`ImagePullBackOff`, `ErrImagePull`, …). */
  waiting(ns: string, name: string, reason: string, message?: string): void {
    this.#move(ns, name, (pod, now) => {
      pod.status.phase = 'Pending'
      setContainers(pod, () => ({ waiting: { reason, message } }), false)
      setConditions(pod, now, false, 'ContainersNotReady')
    })
  }

  /** The kubelet evicts it under node pressure: phase Failed, `status.reason` Evicted. */
  evict(ns: string, name: string, options: { message?: string } = {}): void {
    const pressure =
      'The node was low on resource: memory. Threshold quantity: 100Mi, available: 51200Ki. '
    this.#kill(ns, name, 'Evicted', options.message ?? pressure)
  }

  /** Its `activeDeadlineSeconds` passed: phase Failed, `status.reason` DeadlineExceeded. */
  deadline(ns: string, name: string): void {
    const message = 'Pod was active on the node longer than the specified deadline'
    this.#kill(ns, name, 'DeadlineExceeded', message)
  }

  /** Someone else deletes it for good (`kubectl delete --force`): watchers get DELETED at once. */
  remove(ns: string, name: string): void {
    this.#delete(this.#get(ns, name), 0)
  }

  /** What `GET .../pods/{name}/log` answers for it from now on (plain text). @default '' */
  setLog(ns: string, name: string, text: string): void {
    this.#get(ns, name)
    this.#logs.set(`${ns}/${name}`, text)
  }

  /**
   * Ends every open watch; the client must resume. A clean end by default, after which the
   * client-node informer watches again from its last version; `abrupt` destroys the sockets
   * instead, as a network failure would (the informer then reports an error and stops).
   */
  dropWatches(options: { abrupt?: boolean } = {}): void {
    for (const w of this.#watches) {
      if (options.abrupt) w.res.destroy()
      else w.res.end()
    }
    this.#watches.clear()
  }

  /** Forgets the history: a watch from a version older than now gets an ERROR 410 Expired. */
  compact(): void {
    this.#compactedTo = this.#version
    this.#history = []
  }

  /** Sends a BOOKMARK with the current version to every watch that allowed bookmarks. */
  bookmark(): void {
    for (const w of this.#watches) if (w.bookmarks) this.#bookmark(w)
  }

  /**
   * The next `count` requests that match (a method, and a path prefix such as
   * `/api/v1/namespaces/ns/pods`; both optional) are answered with `status` and a Status body.
   */
  failNext(count: number, status: number, match: { method?: string; path?: string } = {}): void {
    this.#failures.push({ count, status, ...match, method: match.method?.toUpperCase() })
  }

  /** Stops listening and drops every connection, as an unreachable cluster: connects are refused. */
  async pause(): Promise<void> {
    if (this.#paused || this.#closed) return
    this.#paused = true
    this.#watches.clear()
    await stop(this.#server)
  }

  /** Listens again, on the same port. */
  async resume(): Promise<void> {
    if (!this.#paused || this.#closed) return
    await listen(this.#server, this.port)
    this.#paused = false
  }

  /** The most non-terminal Pods (not Succeeded or Failed; deleting ones count) at once in `namespace`. */
  maxNonTerminal(namespace: string): number {
    return this.#nonTerminal.get(namespace)?.max ?? 0
  }

  /** How many connections clients have opened, in all. */
  get connections(): number {
    return this.#connections
  }

  /** How many watches are open now. */
  get watchCount(): number {
    return this.#watches.size
  }

  /**
   * Resolves once `predicate` holds for the current Pods; it is asked now and after every change,
   * so it sees every state. It gets the stored Pods themselves, unsorted: it must not change them.
   * Rejects after `timeoutMs` (@default 5000) or when the server closes.
   */
  waitFor(predicate: (pods: Pod[]) => boolean, timeoutMs = 5000): Promise<void> {
    return this.#until(() => predicate([...this.#pods.values()]), timeoutMs, 'the Pods to match')
  }

  /** Resolves once at least `count` watches are open (a client listens); as `waitFor`. */
  waitForWatches(count = 1, timeoutMs = 5000): Promise<void> {
    return this.#until(() => this.#watches.size >= count, timeoutMs, `${count} open watches`)
  }

  /** Closes the server, every connection and watch, its timers and waiters: nothing stays open. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    for (const t of this.#timers) clearTimeout(t)
    this.#timers.clear()
    for (const w of this.#waiters) w.settle(new Error('KubeApiServer closed'))
    this.#watches.clear()
    if (!this.#paused) await stop(this.#server)
  }

  #until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
    if (check()) return Promise.resolve()
    if (this.#closed) return Promise.reject(new Error('KubeApiServer closed'))
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        check,
        settle: (error) => {
          clearTimeout(timer)
          this.#waiters.delete(waiter)
          if (error) reject(error)
          else resolve()
        },
      }
      const timer = setTimeout(
        () => waiter.settle(new Error(`KubeApiServer: waited ${timeoutMs} ms for ${what}`)),
        timeoutMs,
      )
      this.#waiters.add(waiter)
    })
  }

  /** Settles the waiters whose condition holds; a condition that throws rejects its waiter. */
  #settle(): void {
    for (const w of this.#waiters) {
      try {
        if (w.check()) w.settle()
      } catch (e) {
        w.settle(e instanceof Error ? e : new Error(String(e)))
      }
    }
  }

  #get(ns: string, name: string): Pod {
    const pod = this.#pods.get(`${ns}/${name}`)
    if (!pod) throw new Error(`KubeApiServer: no pod ${ns}/${name}`)
    return pod
  }

  #move(ns: string, name: string, change: (pod: Pod, now: string) => void): void {
    const pod = this.#get(ns, name)
    change(pod, timestamp())
    this.#commit('MODIFIED', pod)
  }

  #end(
    ns: string,
    name: string,
    phase: 'Succeeded' | 'Failed',
    end: { exitCode: number; reason: string; message?: string },
  ): void {
    this.#move(ns, name, (pod, now) => {
      pod.status.phase = phase
      const terminated = (was?: ContainerState) => ({
        terminated: { ...end, startedAt: was?.running?.startedAt ?? now, finishedAt: now },
      })
      setContainers(pod, terminated, false)
      setConditions(pod, now, false, phase === 'Succeeded' ? 'PodCompleted' : 'PodFailed')
    })
  }

  /** The kubelet kills it for a reason of the Pod's, not of a container's. */
  #kill(ns: string, name: string, reason: string, message: string): void {
    this.#move(ns, name, (pod, now) => {
      Object.assign(pod.status, { phase: 'Failed', reason, message })
      for (const c of pod.status.containerStatuses ?? []) {
        const startedAt = c.state?.running?.startedAt
        if (startedAt)
          c.state = { terminated: { exitCode: 137, reason: 'Error', startedAt, finishedAt: now } }
        Object.assign(c, { ready: false, started: false })
      }
      setConditions(pod, now, false, 'PodFailed')
      const disruption = {
        type: 'DisruptionTarget',
        status: 'True',
        reason: 'TerminationByKubelet',
      }
      pod.status.conditions?.push({ ...disruption, message, lastTransitionTime: now })
    })
  }

  /** Every change goes through here: a new version, one history event, the watches, the counts. */
  #commit(type: EventType, pod: Pod): void {
    const key = keyOf(pod)
    pod.metadata.resourceVersion = String(++this.#version)
    if (type === 'DELETED') {
      this.#pods.delete(key)
      this.#logs.delete(key)
    } else this.#pods.set(key, pod)
    const event: HistoryEvent = { version: this.#version, type, pod: structuredClone(pod) }
    this.#history.push(event)
    while (this.#history.length > this.#historyLimit)
      this.#compactedTo = this.#history.shift()!.version
    for (const w of this.#watches) this.#send(w, event)

    const counts = this.#nonTerminal.get(pod.metadata.namespace) ?? { now: 0, max: 0 }
    this.#nonTerminal.set(pod.metadata.namespace, counts)
    const counted = type !== 'DELETED' && !terminal(pod)
    if (counted !== this.#counted.has(key)) {
      if (counted) this.#counted.add(key)
      else this.#counted.delete(key)
      counts.now += counted ? 1 : -1
      counts.max = Math.max(counts.max, counts.now)
    }
    this.#settle()
  }

  /** Deletes at once (grace 0, or a terminal Pod), or marks it and removes it after the grace. */
  #delete(pod: Pod, graceMs: number): void {
    if (pod.metadata.deletionTimestamp !== undefined && graceMs > 0) return
    pod.metadata.deletionTimestamp = timestamp(Date.now() + graceMs)
    pod.metadata.deletionGracePeriodSeconds = Math.ceil(graceMs / 1000)
    if (graceMs === 0 || terminal(pod)) return this.#commit('DELETED', pod)
    this.#commit('MODIFIED', pod)
    const timer = setTimeout(() => {
      this.#timers.delete(timer)
      if (this.#pods.get(keyOf(pod)) === pod) this.#commit('DELETED', pod)
    }, graceMs)
    this.#timers.add(timer)
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', this.url)
    const method = req.method ?? 'GET'
    this.requests.push({ method, path: url.pathname, query: url.search.slice(1) })
    this.#route(req, res, method, url).catch((e: unknown) => {
      const status =
        e instanceof Refusal ? e.status : kubeStatus(500, `Internal error occurred: ${String(e)}`)
      if (res.headersSent) res.destroy()
      else json(res, status.code, status)
    })
  }

  async #route(req: IncomingMessage, res: ServerResponse, method: string, url: URL): Promise<void> {
    const path = url.pathname
    const failure = this.#failures.find(
      (f) => (f.method ?? method) === method && path.startsWith(f.path ?? ''),
    )
    if (failure) {
      if (--failure.count <= 0) this.#failures.splice(this.#failures.indexOf(failure), 1)
      throw refuse(failure.status, `injected failure of ${method} ${path}`)
    }
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? ''
    if (this.#tokens.size > 0 && !this.#tokens.has(token)) throw refuse(401, 'Unauthorized')

    const known = discovery(this.port)[path]
    if (method === 'GET' && known) return json(res, 200, known)
    const m = /^\/api\/v1(?:\/namespaces\/([^/]+))?\/pods(?:\/([^/]+)(\/log)?)?$/.exec(path)
    if (!m || (m[1] === undefined && m[2] !== undefined)) {
      throw refuse(404, 'the server could not find the requested resource')
    }
    const [, ns, name, log] = m
    const query = url.searchParams
    const table = /as=Table/.test(req.headers.accept ?? '')
    if (ns !== undefined && name !== undefined) {
      const pod = this.#pods.get(`${ns}/${name}`)
      if (!pod) throw notFound(name)
      if (method === 'GET' && log) return text(res, this.#logs.get(`${ns}/${name}`) ?? '')
      if (method === 'GET') return json(res, 200, table ? toTable([pod]) : pod)
      if (method === 'DELETE' && !log)
        return this.#deleteRequest(res, pod, await readJson(req), query)
    } else if (method === 'GET' && ['true', '1'].includes(query.get('watch') ?? '')) {
      return this.#watch(res, ns, query, table)
    } else if (method === 'GET') {
      const items = this.pods(ns).filter(podFilter(ns, query))
      const resourceVersion = String(this.#version)
      if (table) return json(res, 200, toTable(items, resourceVersion))
      // List items carry no kind or apiVersion, as the real server's.
      const list = items.map(({ apiVersion: _a, kind: _k, ...item }) => item)
      return json(res, 200, {
        kind: 'PodList',
        apiVersion: 'v1',
        metadata: { resourceVersion },
        items: list,
      })
    } else if (method === 'POST' && ns !== undefined) {
      return this.#create(res, ns, await readJson(req))
    }
    throw refuse(405, 'the server does not allow this method on the requested resource')
  }

  #deleteRequest(res: ServerResponse, pod: Pod, body: unknown, query: URLSearchParams): void {
    const options = isRecord(body) ? body : {}
    const uid = isRecord(options.preconditions) ? options.preconditions.uid : undefined
    if (uid !== undefined && uid !== pod.metadata.uid) {
      const message = `Precondition failed: UID in precondition: ${JSON.stringify(uid)}, UID in object meta: ${pod.metadata.uid}`
      throw refuse(409, message, 'Conflict', { name: pod.metadata.name, kind: 'pods' })
    }
    // A grace of 0 is honoured; any other lasts deleteGraceMs, so that tests need not wait 30 s.
    const seconds = options.gracePeriodSeconds ?? query.get('gracePeriodSeconds')
    this.#delete(
      pod,
      seconds !== undefined && seconds !== null && Number(seconds) === 0 ? 0 : this.#graceMs,
    )
    json(res, 200, pod)
  }

  #create(res: ServerResponse, ns: string, body: unknown): void {
    if (!isRecord(body) || (body.kind ?? 'Pod') !== 'Pod')
      throw refuse(400, 'the object is not a Pod')
    const meta = isRecord(body.metadata) ? body.metadata : {}
    if ((meta.namespace ?? ns) !== ns) {
      throw refuse(
        400,
        'the namespace of the provided object does not match the namespace sent on the request',
      )
    }
    const generated =
      typeof meta.generateName === 'string'
        ? meta.generateName + randomBytes(4).toString('hex').slice(0, 5)
        : undefined
    const name = typeof meta.name === 'string' && meta.name !== '' ? meta.name : generated
    const causes = validatePod(name, meta, body.spec)
    if (causes.length > 0 || name === undefined) {
      const all = causes.map((c) => `${c.field}: ${c.message}`)
      const message = `Pod "${name ?? ''}" is invalid: ${all.length === 1 ? all[0] : `[${all.join(', ')}]`}`
      throw refuse(422, message, 'Invalid', { name: name ?? '', kind: 'Pod', causes })
    }
    if (this.#pods.has(`${ns}/${name}`)) {
      throw refuse(409, `pods "${name}" already exists`, 'AlreadyExists', { name, kind: 'pods' })
    }
    const spec = body.spec as Pod['spec']
    const now = timestamp()
    const { deletionTimestamp: _d, deletionGracePeriodSeconds: _g, ...given } = meta
    const pod: Pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        ...given,
        name,
        namespace: ns,
        uid: randomUUID(),
        resourceVersion: '',
        creationTimestamp: now,
      },
      spec: {
        ...{
          restartPolicy: 'Always',
          terminationGracePeriodSeconds: 30,
          dnsPolicy: 'ClusterFirst',
        },
        ...{ serviceAccountName: 'default', schedulerName: 'default-scheduler' },
        ...spec,
        nodeName: NODE,
        containers: spec.containers.map((c) => ({
          terminationMessagePath: '/dev/termination-log',
          terminationMessagePolicy: 'File',
          imagePullPolicy:
            /:[^/:]+$/.test(c.image ?? '') && !c.image?.endsWith(':latest')
              ? 'IfNotPresent'
              : 'Always',
          ...c,
        })),
      },
      status: { phase: 'Pending', hostIP: '10.0.0.1', qosClass: 'BestEffort' },
    }
    setConditions(pod, now, false, 'ContainersNotReady')
    this.#commit('ADDED', pod)
    const answer = structuredClone(pod)
    this.#kubelet?.(structuredClone(pod), this)
    json(res, 201, answer)
  }

  #watch(
    res: ServerResponse,
    ns: string | undefined,
    query: URLSearchParams,
    table: boolean,
  ): void {
    const matches = podFilter(ns, query)
    const from = query.get('resourceVersion') ?? ''
    if (!/^\d*$/.test(from)) throw refuse(400, `invalid resource version: ${from}`)
    const initial = query.get('sendInitialEvents') === 'true'
    const w: Watch = { res, matches, table, bookmarks: query.get('allowWatchBookmarks') === 'true' }
    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private' })
    // Headers go at once: client-node's watch() resolves only when they arrive.
    res.flushHeaders()
    if (Number(from) > 0 && Number(from) < this.#compactedTo && !initial) {
      const message = `too old resource version: ${from} (${this.#compactedTo + 1})`
      res.end(JSON.stringify({ type: 'ERROR', object: kubeStatus(410, message, 'Expired') }) + '\n')
      return
    }
    if (Number(from) > 0 && !initial) {
      for (const event of this.#history) if (event.version > Number(from)) this.#send(w, event)
    } else {
      // Oldest first, so that the last version the client saw covers every Pod it got.
      const version = (pod: Pod) => Number(pod.metadata.resourceVersion)
      const current = [...this.#pods.values()].sort((a, b) => version(a) - version(b))
      for (const pod of current) this.#send(w, { version: version(pod), type: 'ADDED', pod })
      if (initial) this.#bookmark(w, { 'k8s.io/initial-events-end': 'true' })
    }
    this.#watches.add(w)
    const seconds = Number(query.get('timeoutSeconds') ?? 0)
    const timer = seconds > 0 ? setTimeout(() => res.end(), seconds * 1000) : undefined
    if (timer) this.#timers.add(timer)
    res.on('close', () => {
      this.#watches.delete(w)
      clearTimeout(timer)
      if (timer) this.#timers.delete(timer)
    })
    this.#settle()
  }

  #send(w: Watch, event: HistoryEvent): void {
    if (!w.matches(event.pod)) return
    const object = w.table ? toTable([event.pod]) : event.pod
    w.res.write(JSON.stringify({ type: event.type, object }) + '\n')
  }

  #bookmark(w: Watch, annotations?: Record<string, string>): void {
    const metadata = { resourceVersion: String(this.#version), ...(annotations && { annotations }) }
    w.res.write(
      JSON.stringify({ type: 'BOOKMARK', object: { kind: 'Pod', apiVersion: 'v1', metadata } }) +
        '\n',
    )
  }
}

/** The discovery documents kubectl reads before it touches Pods. */
function discovery(port: number): Record<string, unknown> {
  const pods = { name: 'pods', singularName: 'pod', namespaced: true, kind: 'Pod' }
  const verbs = ['create', 'delete', 'get', 'list', 'watch']
  return {
    '/version': {
      major: '1',
      minor: '32',
      gitVersion: 'v1.32.0-lockstep',
      platform: 'linux/amd64',
    },
    '/api': {
      kind: 'APIVersions',
      versions: ['v1'],
      serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: `127.0.0.1:${port}` }],
    },
    '/apis': { kind: 'APIGroupList', apiVersion: 'v1', groups: [] },
    '/api/v1': {
      kind: 'APIResourceList',
      groupVersion: 'v1',
      resources: [
        { ...pods, verbs, shortNames: ['po'], categories: ['all'] },
        { ...pods, name: 'pods/log', singularName: '', verbs: ['get'] },
      ],
    },
  }
}

function setContainers(
  pod: Pod,
  state: (was?: ContainerState) => ContainerState,
  ready: boolean,
): void {
  const was = new Map((pod.status.containerStatuses ?? []).map((c) => [c.name, c.state]))
  pod.status.containerStatuses = pod.spec.containers.map((c, i) => {
    const s = state(was.get(c.name))
    const started = s.waiting === undefined
    const id = { containerID: `containerd://${pod.metadata.uid.replace(/-/g, '')}${i}` }
    const imageID = started ? `docker.io/library/${c.image}@sha256:${'0'.repeat(64)}` : ''
    const status = { name: c.name, image: c.image ?? '', imageID, ...(started && id), ready }
    return { ...status, started: s.running !== undefined, restartCount: 0, state: s }
  })
}

function setConditions(pod: Pod, now: string, ready: boolean, reason?: string): void {
  const scheduled = { status: 'True', lastTransitionTime: pod.metadata.creationTimestamp }
  const readiness = {
    status: ready ? 'True' : 'False',
    lastTransitionTime: now,
    ...(!ready && { reason }),
  }
  pod.status.conditions = [
    { type: 'PodScheduled', ...scheduled },
    { type: 'Initialized', ...scheduled },
    { type: 'ContainersReady', ...readiness },
    { type: 'Ready', ...readiness },
  ]
}

/** The Pods a list or watch asks for: its namespace, label selector and field selector. */
function podFilter(ns: string | undefined, query: URLSearchParams): (pod: Pod) => boolean {
  const labels = parseSelector(query.get('labelSelector') ?? '', false)
  const fields = parseSelector(query.get('fieldSelector') ?? '', true)
  return (pod) =>
    (ns === undefined || pod.metadata.namespace === ns) &&
    labels(pod.metadata.labels ?? {}) &&
    fields({
      'metadata.name': pod.metadata.name,
      'metadata.namespace': pod.metadata.namespace,
      'status.phase': pod.status.phase ?? '',
      'spec.nodeName': pod.spec.nodeName ?? '',
    })
}

/** Parses a label selector, or a field selector (`=`, `==`, `!=` on the known fields only). */
function parseSelector(
  selector: string,
  fields: boolean,
): (values: Record<string, string>) => boolean {
  const KNOWN = ['metadata.name', 'metadata.namespace', 'status.phase', 'spec.nodeName']
  const terms = selector
    .split(/,(?![^(]*\))/)
    .map((t) => t.trim())
    .filter((t) => t !== '')
  const tests = terms.map((term): ((v: Record<string, string>) => boolean) => {
    const set = /^([^\s!=(),]+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(term)
    const compare = /^([^\s!=(),]+)\s*(==|=|!=)\s*([^\s!=(),]*)$/.exec(term)
    const exists = /^(!?)([^\s!=(),]+)$/.exec(term)
    const has = (v: Record<string, string>, key: string) => Object.hasOwn(v, key)
    if (fields && !KNOWN.includes(compare?.[1] ?? '')) {
      throw refuse(400, `field label not supported: ${compare?.[1] ?? term}`)
    }
    if (set) {
      const [, key = '', op, list = ''] = set
      const values = list.split(',').map((s) => s.trim())
      return (v) => (has(v, key) && values.includes(v[key]!)) === (op === 'in')
    }
    if (compare) {
      const [, key = '', op, value] = compare
      return (v) => (has(v, key) && v[key] === value) === (op !== '!=')
    }
    if (exists) return (v) => has(v, exists[2]!) === (exists[1] === '')
    throw refuse(400, `unable to parse requirement: ${term}`)
  })
  return (values) => tests.every((t) => t(values))
}

/** A `Table` of Pods, with the real server's first columns: what `kubectl get` prints. */
function toTable(pods: Pod[], resourceVersion?: string): unknown {
  const names = ['Name', 'Ready', 'Status', 'Restarts', 'Age']
  const columnDefinitions = names.map((name, i) => {
    return { name, type: 'string', format: i === 0 ? 'name' : '', description: '', priority: 0 }
  })
  const rows = pods.map((pod) => {
    const statuses = pod.status.containerStatuses ?? []
    const states = statuses.map((c) => c.state?.waiting?.reason ?? c.state?.terminated?.reason)
    const shown = pod.metadata.deletionTimestamp
      ? 'Terminating'
      : (pod.status.reason ?? states.find((r) => r !== undefined) ?? pod.status.phase)
    const ready = `${statuses.filter((c) => c.ready).length}/${pod.spec.containers.length}`
    const age = Math.max(
      0,
      Math.round((Date.now() - Date.parse(pod.metadata.creationTimestamp)) / 1000),
    )
    const object = {
      kind: 'PartialObjectMetadata',
      apiVersion: 'meta.k8s.io/v1',
      metadata: pod.metadata,
    }
    return { cells: [pod.metadata.name, ready, shown, '0', `${age}s`], object }
  })
  const metadata = resourceVersion === undefined ? {} : { resourceVersion }
  return { kind: 'Table', apiVersion: 'meta.k8s.io/v1', metadata, columnDefinitions, rows }
}

/** Each rule: the longest value, the pattern, and what the real server says of a mismatch. */
const RULES = {
  subdomain: [
    253,
    /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/,
    `a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`,
  ],
  label: [
    63,
    /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/,
    `a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')`,
  ],
  keyName: [
    63,
    /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/,
    `must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')`,
  ],
  labelValue: [
    63,
    /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/,
    `a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')`,
  ],
  env: [
    Infinity,
    /^[-._a-zA-Z][-._a-zA-Z0-9]*$/,
    `a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')`,
  ],
} as const satisfies Record<string, readonly [number, RegExp, string]>

/** What the real server's validation says of a Pod it is asked to create, in its words. */
function validatePod(
  name: string | undefined,
  meta: Record<string, unknown>,
  spec: unknown,
): Cause[] {
  const causes: Cause[] = []
  const cause = (field: string, reason: string, message: string) =>
    causes.push({ reason, message, field })
  const invalid = (field: string, value: unknown, why: string) =>
    cause(field, 'FieldValueInvalid', `Invalid value: ${JSON.stringify(value)}: ${why}`)
  /** Checks a required string against a rule; answers it when it is one. */
  const check = (
    field: string,
    value: unknown,
    rule: keyof typeof RULES,
    prefix = '',
    shown = value,
  ) => {
    const [max, pattern, words] = RULES[rule]
    if (typeof value !== 'string' || (value === '' && rule !== 'labelValue')) {
      return void cause(field, 'FieldValueRequired', 'Required value')
    }
    if (value.length > max) invalid(field, shown, `${prefix}must be no more than ${max} characters`)
    else if (!pattern.test(value)) invalid(field, shown, prefix + words)
    return value
  }
  const keys = (field: string, map: unknown, values: boolean) => {
    for (const [key, value] of Object.entries(isRecord(map) ? map : {})) {
      const slash = key.indexOf('/')
      if (slash >= 0) check(field, key.slice(0, slash), 'subdomain', 'prefix part ', key)
      check(field, key.slice(slash + 1), 'keyName', 'name part ', key)
      if (values) check(field, value, 'labelValue')
    }
  }
  check('metadata.name', name, 'subdomain')
  keys('metadata.labels', meta.labels, true)
  keys('metadata.annotations', meta.annotations, false)
  if (!isRecord(spec))
    return [...causes, { reason: 'FieldValueRequired', message: 'Required value', field: 'spec' }]

  const list = (v: unknown): Record<string, unknown>[] =>
    Array.isArray(v) ? v.map((e) => (isRecord(e) ? e : {})) : []
  const unique = (seen: Set<string>, field: string, value: string | undefined) => {
    if (value !== undefined && seen.has(value))
      cause(field, 'FieldValueDuplicate', `Duplicate value: "${value}"`)
    if (value !== undefined) seen.add(value)
  }
  const volumes = new Set<string>()
  list(spec.volumes).forEach((v, i) =>
    unique(volumes, `spec.volumes[${i}].name`, check(`spec.volumes[${i}].name`, v.name, 'label')),
  )
  const names = new Set<string>()
  for (const kind of ['initContainers', 'containers'] as const) {
    const containers = list(spec[kind])
    if (kind === 'containers' && containers.length === 0)
      cause('spec.containers', 'FieldValueRequired', 'Required value')
    containers.forEach((c, i) => {
      const at = `spec.${kind}[${i}]`
      unique(names, `${at}.name`, check(`${at}.name`, c.name, 'label'))
      if (typeof c.image !== 'string' || c.image === '')
        cause(`${at}.image`, 'FieldValueRequired', 'Required value')
      else if (c.image.trim() !== c.image)
        invalid(`${at}.image`, c.image, 'must not have leading or trailing whitespace')
      list(c.env).forEach((e, j) => check(`${at}.env[${j}].name`, e.name, 'env'))
      list(c.volumeMounts).forEach((m, j) => {
        const mount = typeof m.name === 'string' ? m.name : ''
        if (!volumes.has(mount))
          cause(`${at}.volumeMounts[${j}].name`, 'FieldValueNotFound', `Not found: "${mount}"`)
      })
    })
  }
  const policy = spec.restartPolicy
  if (policy !== undefined && !['Always', 'OnFailure', 'Never'].includes(policy as string)) {
    const supported = 'supported values: "Always", "OnFailure", "Never"'
    cause(
      'spec.restartPolicy',
      'FieldValueNotSupported',
      `Unsupported value: ${JSON.stringify(policy)}: ${supported}`,
    )
  }
  const deadline = spec.activeDeadlineSeconds
  if (deadline !== undefined && (!Number.isInteger(deadline) || (deadline as number) < 1)) {
    invalid('spec.activeDeadlineSeconds', deadline, 'must be between 1 and 2147483647, inclusive')
  }
  return causes
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > 3 * 1024 * 1024) throw refuse(413, 'Request entity too large: limit is 3145728')
    chunks.push(chunk)
  }
  const body = Buffer.concat(chunks).toString('utf8')
  if (body.trim() === '') return undefined
  try {
    return JSON.parse(body) as unknown
  } catch {
    throw refuse(
      400,
      'the body of the request was in an unknown format - accepted media types include: application/json',
    )
  }
}

function json(res: ServerResponse, code: number, body: unknown): void {
  res.writeHead(code, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private' })
  res.end(JSON.stringify(body))
}

function text(res: ServerResponse, body: string): void {
  res.writeHead(200, { 'Content-Type': 'text/plain' })
  res.end(body)
}

function listen(server: Server, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject)
      resolve()
    })
  })
}

/**
 * Listens on a random free port between 10000 and the first ephemeral port, when that range is
 * known (`/proc/sys/net/ipv4/ip_local_port_range`) and holds at least 5000 ports; else on port 0.
 */
async function listenBelowEphemeral(server: Server): Promise<void> {
  let first = 0
  try {
    first = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').split(/\s+/)[0])
  } catch {
    // Not Linux: any free port.
  }
  if (!(first >= 15_000)) return listen(server, 0)
  for (let tries = 1; ; tries++) {
    const port = 10_000 + Math.floor(Math.random() * (first - 10_000))
    try {
      return await listen(server, port)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EADDRINUSE' || tries >= 50) throw e
    }
  }
}

function stop(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve())
    server.closeAllConnections()
  })
}
