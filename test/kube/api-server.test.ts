/**
 * The test Kubernetes API server against the real clients: `@kubernetes/client-node` 1.4 and
 * `kubectl` 1.32. What a user of the server notices: the clients work unchanged against it.
 *
 * What client-node 1.4's informer (`makeInformer`, `ListWatch` in dist/cache.js over `Watch` in
 * dist/watch.js) does, read in its code and held by the tests below:
 * - `start()` lists, then watches from the list's resourceVersion; it resolves once the watch's
 *   response headers arrive (so a watch is open when it resolves). It emits 'connect' each time
 *   it (re)connects, before listing.
 * - A watch the server ends cleanly (a drop, `timeoutSeconds`): it watches again at once from the
 *   last resourceVersion it saw, with no re-list and no 'error'.
 * - A broken connection ('Premature close'), a non-200 watch answer (other than 410), or a failed
 *   list: it emits 'error' and stops for good. The caller must call `start()` again (with a
 *   backoff); that watches from the kept resourceVersion, or lists first if it has none.
 * - An ERROR event with code 410 (or a 410 answer) clears its resourceVersion, emits no 'error';
 *   when the stream then ends it lists again by itself ('delete' for what vanished, 'update' for
 *   what changed, 'add' for what is new) and watches from the new list's version.
 * - `stop()` aborts the watch, and that abort reaches the 'error' handlers as an AbortError: a
 *   driver must ignore errors after its own stop.
 * - Objects from a watch event are plain JSON (timestamps are strings); objects from a list are
 *   the client's models (timestamps are `Date`). The same cache holds both.
 * - The watch request has no timeout of its own (the 30 s signal is built, then overwritten).
 * - `ApiException` (CoreV1Api): `code` is the HTTP status, `body` the Status as a JSON string;
 *   a 401 carries no body.
 */
import { execFile, spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import {
  ApiException,
  CoreV1Api,
  KubeConfig,
  Watch,
  makeInformer,
  type Informer,
  type V1Pod,
} from '@kubernetes/client-node'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { checkLeaks } from '../leaks.ts'
import {
  KubeApiServer,
  type KubeApiServerOptions,
  type KubeStatus,
  type Pod,
} from './api-server.ts'

const opened = checkLeaks()
const NS = 'lockstep'

let dir: string
let servers: KubeApiServer[]

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'lockstep-kube-'))
  servers = []
})

afterEach(async () => {
  for (const s of servers) await s.close()
  rmSync(dir, { recursive: true, force: true })
})

async function start(options?: KubeApiServerOptions): Promise<KubeApiServer> {
  const kube = opened.server(await KubeApiServer.start(options), 'kube api server')
  servers.push(kube)
  return kube
}

function client(kube: KubeApiServer, token?: string): { kc: KubeConfig; api: CoreV1Api } {
  const kc = new KubeConfig()
  kc.loadFromFile(kube.kubeconfig(dir, { namespace: NS, token, file: `kc-${token ?? 'any'}` }))
  return { kc, api: kc.makeApiClient(CoreV1Api) }
}

function pod(name: string, labels: Record<string, string> = {}, spec?: object): V1Pod {
  const containers = [{ name: 'main', image: 'busybox:1.36', env: [{ name: 'JOB', value: name }] }]
  return { metadata: { name, labels }, spec: { restartPolicy: 'Never', containers, ...spec } }
}

/** The Status an ApiException carries (its body is the JSON text), or a 401's absence of one. */
async function refusal(
  call: Promise<unknown>,
): Promise<{ code: number; reason?: string; field?: string }> {
  const e: unknown = await call.then(
    () => undefined,
    (error: unknown) => error,
  )
  if (!(e instanceof ApiException)) throw new Error(`expected an ApiException, got ${String(e)}`)
  type Body = { reason?: string; details?: { causes?: { field: string }[] } }
  const body = typeof e.body === 'string' ? (JSON.parse(e.body) as Body) : undefined
  return { code: e.code, reason: body?.reason, field: body?.details?.causes?.[0]?.field }
}

/** Records an informer's events as words, and awaits them. */
function record(informer: Informer<V1Pod>) {
  const seen: string[] = []
  let wake = () => {}
  const push = (word: string) => {
    seen.push(word)
    wake()
  }
  for (const verb of ['add', 'update', 'delete'] as const) {
    informer.on(verb, (p) => push(`${verb} ${p.metadata?.name} ${p.status?.phase}`))
  }
  informer.on('connect', () => push('connect'))
  informer.on('error', (e) => push(`error ${String(e)}`))
  const until = async (predicate: (seen: string[]) => boolean, timeoutMs = 5000) => {
    const deadline = Date.now() + timeoutMs
    while (!predicate(seen)) {
      if (Date.now() > deadline) throw new Error(`informer events: ${seen.join(', ')}`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, deadline - Date.now())
        wake = () => (clearTimeout(timer), resolve())
      })
    }
  }
  return { seen, until, has: (word: string) => () => seen.includes(word) }
}

function informerOf(kc: KubeConfig, api: CoreV1Api, labelSelector = 'app=a') {
  const list = () => api.listNamespacedPod({ namespace: NS, labelSelector })
  return makeInformer(kc, `/api/v1/namespaces/${NS}/pods`, list, labelSelector)
}

const count = (kube: KubeApiServer, method: string, watch?: boolean) =>
  kube.requests.filter(
    (r) =>
      r.method === method && (watch === undefined || /(^|&)watch=true/.test(r.query) === watch),
  ).length

describe('with @kubernetes/client-node', () => {
  it('creates, gets, lists by label and deletes Pods, as the real server answers', async () => {
    const kube = await start()
    const { api } = client(kube)
    const created = await api.createNamespacedPod({ namespace: NS, body: pod('p1', { app: 'a' }) })
    expect(created.metadata?.uid).toMatch(/^[0-9a-f-]{36}$/)
    expect(created.metadata?.creationTimestamp).toBeInstanceOf(Date)
    expect(created.status?.phase).toBe('Pending')
    await api.createNamespacedPod({ namespace: NS, body: pod('p2', { app: 'b' }) })

    const got = await api.readNamespacedPod({ namespace: NS, name: 'p1' })
    expect(got.metadata?.uid).toBe(created.metadata?.uid)
    expect(got.spec?.containers[0]?.env).toEqual([{ name: 'JOB', value: 'p1' }])
    const listed = await api.listNamespacedPod({ namespace: NS, labelSelector: 'app=a' })
    expect(listed.items.map((p) => p.metadata?.name)).toEqual(['p1'])
    expect(Number(listed.metadata?.resourceVersion)).toBeGreaterThanOrEqual(2)

    const deleted = await api.deleteNamespacedPod({ namespace: NS, name: 'p1' })
    expect(deleted.metadata?.name).toBe('p1')
    expect(await refusal(api.readNamespacedPod({ namespace: NS, name: 'p1' }))).toEqual({
      code: 404,
      reason: 'NotFound',
    })
    expect(await refusal(api.deleteNamespacedPod({ namespace: NS, name: 'p1' }))).toMatchObject({
      code: 404,
    })
    expect(kube.pods().map((p) => p.metadata.name)).toEqual(['p2'])
    expect(count(kube, 'POST')).toBe(2)
  })

  it.each([
    ['app=a', ['a1', 'a2']],
    ['app==a,tier=web', ['a1']],
    ['app!=a', ['b', 'none']],
    ['app', ['a1', 'a2', 'b']],
    ['!app', ['none']],
    ['app in (a, b),tier', ['a1', 'b']],
    ['app notin (a)', ['b', 'none']],
  ])('lists with the label selector %s', async (labelSelector, names) => {
    const kube = await start()
    const { api } = client(kube)
    const labels = {
      a1: { app: 'a', tier: 'web' },
      a2: { app: 'a' },
      b: { app: 'b', tier: 'db' },
      none: {},
    }
    for (const [name, l] of Object.entries(labels)) {
      await api.createNamespacedPod({ namespace: NS, body: pod(name, l) })
    }
    const listed = await api.listNamespacedPod({ namespace: NS, labelSelector })
    expect(listed.items.map((p) => p.metadata?.name)).toEqual(names)
  })

  it('lists across namespaces and by field', async () => {
    const kube = await start()
    const { api } = client(kube)
    await api.createNamespacedPod({ namespace: NS, body: pod('p1') })
    await api.createNamespacedPod({ namespace: 'other', body: pod('p1') })
    kube.run('other', 'p1')
    const all = await api.listPodForAllNamespaces()
    expect(all.items.map((p) => p.metadata?.namespace)).toEqual([NS, 'other'])
    const running = await api.listPodForAllNamespaces({ fieldSelector: 'status.phase=Running' })
    expect(running.items.map((p) => p.metadata?.namespace)).toEqual(['other'])
    const bad = api.listNamespacedPod({ namespace: NS, fieldSelector: 'spec.image=x' })
    expect(await refusal(bad)).toMatchObject({ code: 400, reason: 'BadRequest' })
  })

  it('refuses a duplicate name with 409 AlreadyExists', async () => {
    const kube = await start()
    const { api } = client(kube)
    await api.createNamespacedPod({ namespace: NS, body: pod('p1') })
    expect(await refusal(api.createNamespacedPod({ namespace: NS, body: pod('p1') }))).toEqual({
      code: 409,
      reason: 'AlreadyExists',
    })
  })

  const long = (n: number) => 'a'.repeat(n)
  it.each<[string, V1Pod, string]>([
    ['an upper-case name', pod('Bad_Name'), 'metadata.name'],
    ['a name of 254 characters', pod(long(254)), 'metadata.name'],
    ['a label value with a space', pod('p', { app: 'a b' }), 'metadata.labels'],
    ['a label value of 64 characters', pod('p', { app: long(64) }), 'metadata.labels'],
    ['a label key that starts with -', pod('p', { '-app': 'a' }), 'metadata.labels'],
    ['a label key with a bad prefix', pod('p', { 'Lockstep.IO/job': 'a' }), 'metadata.labels'],
    ['no containers', pod('p', {}, { containers: [] }), 'spec.containers'],
    [
      'a container without an image',
      pod('p', {}, { containers: [{ name: 'main' }] }),
      'spec.containers[0].image',
    ],
    [
      'a container named in capitals',
      pod('p', {}, { containers: [{ name: 'Main', image: 'x' }] }),
      'spec.containers[0].name',
    ],
    [
      'two containers of one name',
      pod(
        'p',
        {},
        {
          containers: [
            { name: 'm', image: 'x' },
            { name: 'm', image: 'y' },
          ],
        },
      ),
      'spec.containers[1].name',
    ],
    [
      'an env name that starts with a digit',
      pod('p', {}, { containers: [{ name: 'm', image: 'x', env: [{ name: '1X', value: '' }] }] }),
      'spec.containers[0].env[0].name',
    ],
    [
      'a mount of no volume',
      pod(
        'p',
        {},
        { containers: [{ name: 'm', image: 'x', volumeMounts: [{ name: 'v', mountPath: '/v' }] }] },
      ),
      'spec.containers[0].volumeMounts[0].name',
    ],
    [
      'an unknown restart policy',
      pod('p', {}, { restartPolicy: 'Sometimes' }),
      'spec.restartPolicy',
    ],
    ['a deadline of 0', pod('p', {}, { activeDeadlineSeconds: 0 }), 'spec.activeDeadlineSeconds'],
  ])('refuses %s with 422 Invalid', async (_what, body, field) => {
    const kube = await start()
    const { api } = client(kube)
    const answer = await refusal(api.createNamespacedPod({ namespace: NS, body }))
    expect(answer).toEqual({ code: 422, reason: 'Invalid', field })
    expect(kube.pods()).toEqual([])
  })

  it('accepts what the real server accepts: prefixed keys, dotted env names, generateName', async () => {
    const kube = await start()
    const { api } = client(kube)
    const labels = { 'lockstep.io/job': 'J_1.a', 'app.kubernetes.io/name': 'lockstep', empty: '' }
    const spec = {
      containers: [
        {
          name: 'm',
          image: 'x',
          env: [{ name: 'my.env-name' }],
          volumeMounts: [{ name: 'w', mountPath: '/w' }],
        },
      ],
      volumes: [{ name: 'w', emptyDir: {} }],
    }
    await api.createNamespacedPod({ namespace: NS, body: pod(long(253), labels, spec) })
    const generated = await api.createNamespacedPod({
      namespace: NS,
      body: {
        metadata: { generateName: 'job-' },
        spec: { containers: [{ name: 'm', image: 'x' }] },
      },
    })
    expect(generated.metadata?.name).toMatch(/^job-[0-9a-f]{5}$/)
  })

  it('answers 401 without the token a kubeconfig named, and serves with it', async () => {
    const kube = await start()
    const { api } = client(kube, 's3cret')
    await api.createNamespacedPod({ namespace: NS, body: pod('p1') })
    const stranger = new KubeConfig()
    stranger.loadFromOptions({
      clusters: [{ name: 'c', server: kube.url, skipTLSVerify: true }],
      users: [{ name: 'u', token: 'guess' }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    })
    const refused = stranger.makeApiClient(CoreV1Api).listNamespacedPod({ namespace: NS })
    expect(await refusal(refused)).toEqual({ code: 401 })
  })

  it('answers injected failures with a Status, then serves again', async () => {
    const kube = await start()
    const { api } = client(kube)
    kube.failNext(2, 503, { method: 'post', path: `/api/v1/namespaces/${NS}/pods` })
    await api.listNamespacedPod({ namespace: NS })
    expect(await refusal(api.createNamespacedPod({ namespace: NS, body: pod('p1') }))).toEqual({
      code: 503,
      reason: 'ServiceUnavailable',
    })
    await expect(api.createNamespacedPod({ namespace: NS, body: pod('p1') })).rejects.toThrow()
    await api.createNamespacedPod({ namespace: NS, body: pod('p1') })
    expect(kube.pods().map((p) => p.metadata.name)).toEqual(['p1'])
  })

  it('refuses connections while paused, and serves on the same port after resume', async () => {
    const kube = await start()
    const { api } = client(kube)
    await kube.pause()
    await expect(api.listNamespacedPod({ namespace: NS })).rejects.toThrow(/ECONNREFUSED/)
    await kube.resume()
    await api.createNamespacedPod({ namespace: NS, body: pod('p1') })
    expect(kube.pod(NS, 'p1')?.status.phase).toBe('Pending')
  })

  it('serves the log a test set', async () => {
    const kube = await start()
    const { api } = client(kube)
    await api.createNamespacedPod({ namespace: NS, body: pod('p1') })
    kube.setLog(NS, 'p1', 'hello\nworld\n')
    expect(await api.readNamespacedPodLog({ namespace: NS, name: 'p1' })).toBe('hello\nworld\n')
  })
})

describe('the kubelet moves', () => {
  type Expected = { phase: string; reason?: string; state: Record<string, unknown> }
  it.each<[string, (kube: KubeApiServer) => void, Expected]>([
    ['run', (k) => k.run(NS, 'p'), { phase: 'Running', state: { running: {} } }],
    [
      'succeed',
      (k) => k.succeed(NS, 'p', { message: 'done' }),
      {
        phase: 'Succeeded',
        state: { terminated: { exitCode: 0, reason: 'Completed', message: 'done' } },
      },
    ],
    [
      'fail',
      (k) => k.fail(NS, 'p', { exitCode: 137, reason: 'OOMKilled' }),
      { phase: 'Failed', state: { terminated: { exitCode: 137, reason: 'OOMKilled' } } },
    ],
    [
      'waiting',
      (k) => k.waiting(NS, 'p', 'ImagePullBackOff', 'Back-off pulling image'),
      {
        phase: 'Pending',
        state: { waiting: { reason: 'ImagePullBackOff', message: 'Back-off pulling image' } },
      },
    ],
    [
      'evict',
      (k) => k.evict(NS, 'p'),
      { phase: 'Failed', reason: 'Evicted', state: { terminated: { exitCode: 137 } } },
    ],
    [
      'deadline',
      (k) => k.deadline(NS, 'p'),
      { phase: 'Failed', reason: 'DeadlineExceeded', state: { terminated: { exitCode: 137 } } },
    ],
  ])('%s: the Pod shows what the kubelet would report', async (_move, move, expected) => {
    const kube = await start()
    const { api } = client(kube)
    await api.createNamespacedPod({ namespace: NS, body: pod('p') })
    const before = Number(kube.pod(NS, 'p')?.metadata.resourceVersion)
    kube.run(NS, 'p')
    move(kube)
    const got = await api.readNamespacedPod({ namespace: NS, name: 'p' })
    expect(got.status?.phase).toBe(expected.phase)
    expect(got.status?.reason).toBe(expected.reason)
    expect(got.status?.containerStatuses?.[0]?.state).toMatchObject(expected.state)
    expect(Number(got.metadata?.resourceVersion)).toBeGreaterThan(before)
  })

  it('a kubelet option moves each Pod as it is created', async () => {
    const kube = await start({
      kubelet: (p, k) => {
        k.run(p.metadata.namespace, p.metadata.name)
        setImmediate(() => k.succeed(p.metadata.namespace, p.metadata.name))
      },
    })
    const { api } = client(kube)
    const created = await api.createNamespacedPod({ namespace: NS, body: pod('p1') })
    expect(created.status?.phase).toBe('Pending')
    await kube.waitFor((pods) => pods.some((p) => p.status.phase === 'Succeeded'))
    expect(kube.maxNonTerminal(NS)).toBe(1)
  })

  it('counts the most non-terminal Pods at once, deleting ones included', async () => {
    const kube = await start({ deleteGraceMs: 60_000 })
    const { api } = client(kube)
    const create = (name: string) => api.createNamespacedPod({ namespace: NS, body: pod(name) })
    await create('p1')
    await create('p2')
    await api.deleteNamespacedPod({ namespace: NS, name: 'p2' }) // lingers, still not terminal
    kube.succeed(NS, 'p1')
    await create('p3')
    expect(kube.maxNonTerminal(NS)).toBe(2)
    await create('p4')
    expect(kube.maxNonTerminal(NS)).toBe(3)
    expect(kube.maxNonTerminal('other')).toBe(0)
  })

  it('deletes gracefully: the Pod lingers with a deletionTimestamp, a terminal one goes at once', async () => {
    const kube = await start({ deleteGraceMs: 100 })
    const { api } = client(kube)
    await api.createNamespacedPod({ namespace: NS, body: pod('p1') })
    await api.createNamespacedPod({ namespace: NS, body: pod('p2') })
    kube.run(NS, 'p1')
    kube.succeed(NS, 'p2')
    const deleting = await api.deleteNamespacedPod({ namespace: NS, name: 'p1' })
    expect(deleting.metadata?.deletionTimestamp).toBeInstanceOf(Date)
    expect(kube.pod(NS, 'p1')?.metadata.deletionTimestamp).toBeDefined()
    await api.deleteNamespacedPod({ namespace: NS, name: 'p2' })
    expect(kube.pod(NS, 'p2')).toBeUndefined()
    await kube.waitFor((pods) => pods.length === 0)
  })

  it('refuses a delete whose uid precondition names another Pod of the name', async () => {
    const kube = await start()
    const { api } = client(kube)
    await api.createNamespacedPod({ namespace: NS, body: pod('p1') })
    const body = { preconditions: { uid: 'an-older-pod' } }
    const refused = await refusal(api.deleteNamespacedPod({ namespace: NS, name: 'p1', body }))
    expect(refused).toEqual({ code: 409, reason: 'Conflict' })
    expect(kube.pod(NS, 'p1')).toBeDefined()
  })
})

describe('watches', () => {
  it('an informer sees ADDED, MODIFIED and DELETED as Pods move', async () => {
    const kube = await start()
    const { kc, api } = client(kube)
    await api.createNamespacedPod({ namespace: NS, body: pod('p0', { app: 'a' }) })
    const informer = informerOf(kc, api)
    const events = record(informer)
    await informer.start()
    try {
      await api.createNamespacedPod({ namespace: NS, body: pod('p1', { app: 'a' }) })
      await api.createNamespacedPod({ namespace: NS, body: pod('other', { app: 'b' }) })
      kube.run(NS, 'p1')
      kube.fail(NS, 'p1', { exitCode: 1 })
      kube.remove(NS, 'p1')
      await events.until(events.has('delete p1 Failed'))
      expect(events.seen).toEqual([
        'connect',
        'add p0 Pending',
        'add p1 Pending',
        'update p1 Running',
        'update p1 Failed',
        'delete p1 Failed',
      ])
      expect(informer.list(NS).map((p) => p.metadata?.name)).toEqual(['p0'])
    } finally {
      await informer.stop()
    }
  })

  it('after a clean drop the informer watches again from its version and misses nothing', async () => {
    const kube = await start()
    const { kc, api } = client(kube)
    await api.createNamespacedPod({ namespace: NS, body: pod('p1', { app: 'a' }) })
    const informer = informerOf(kc, api)
    const events = record(informer)
    await informer.start()
    try {
      const version = kube.pod(NS, 'p1')?.metadata.resourceVersion
      kube.dropWatches()
      kube.run(NS, 'p1') // while no watch is open
      await events.until(events.has('update p1 Running'))
      expect(events.seen).toEqual(['connect', 'add p1 Pending', 'connect', 'update p1 Running'])
      expect(count(kube, 'GET', false)).toBe(1) // no re-list
      expect(kube.requests.at(-1)?.query).toContain(`resourceVersion=${version}`)
    } finally {
      await informer.stop()
    }
  })

  it('after an abrupt drop the informer reports an error and stops; start() resumes it', async () => {
    const kube = await start()
    const { kc, api } = client(kube)
    await api.createNamespacedPod({ namespace: NS, body: pod('p1', { app: 'a' }) })
    const informer = informerOf(kc, api)
    const events = record(informer)
    await informer.start()
    try {
      kube.dropWatches({ abrupt: true })
      await events.until((seen) => seen.some((w) => w.startsWith('error')))
      kube.run(NS, 'p1')
      expect(kube.watchCount).toBe(0)
      await informer.start()
      await events.until(events.has('update p1 Running'))
      expect(events.seen.slice(2)).toEqual([
        'error Error: Premature close',
        'connect',
        'update p1 Running',
      ])
      expect(count(kube, 'GET', false)).toBe(1)
    } finally {
      await informer.stop()
    }
  })

  it('after compact() a watch from an old version gets 410 Expired; the informer lists again', async () => {
    const kube = await start()
    const { kc, api } = client(kube)
    await api.createNamespacedPod({ namespace: NS, body: pod('p1', { app: 'a' }) })
    const old = kube.pod(NS, 'p1')!.metadata.resourceVersion
    await api.createNamespacedPod({ namespace: NS, body: pod('p2', { app: 'a' }) })
    kube.compact()

    const watched: { type: string; object: KubeStatus }[] = []
    let done: (err: unknown) => void = () => {}
    const ended = new Promise((resolve) => (done = resolve))
    const path = `/api/v1/namespaces/${NS}/pods`
    await new Watch(kc).watch(
      path,
      { resourceVersion: old },
      (type, object: KubeStatus) => watched.push({ type, object }),
      done,
    )
    expect(await ended).toBeNull()
    expect(watched.map((w) => [w.type, w.object.code, w.object.reason])).toEqual([
      ['ERROR', 410, 'Expired'],
    ])

    // An informer whose version is too old: its watch is answered 410 and it lists again itself.
    const informer = informerOf(kc, api)
    const events = record(informer)
    await informer.start()
    try {
      kube.dropWatches({ abrupt: true })
      await events.until((seen) => seen.some((w) => w.startsWith('error')))
      kube.remove(NS, 'p1')
      await api.createNamespacedPod({ namespace: NS, body: pod('p3', { app: 'a' }) })
      kube.compact()
      await informer.start()
      await events.until(events.has('add p3 Pending'))
      expect(events.seen.slice(4)).toEqual([
        'connect',
        'connect',
        'delete p1 Pending',
        'add p3 Pending',
      ])
      expect(count(kube, 'GET', false)).toBe(2)
      expect(
        informer
          .list(NS)
          .map((p) => p.metadata?.name)
          .sort(),
      ).toEqual(['p2', 'p3'])
    } finally {
      await informer.stop()
    }
  })

  it('close() ends every open watch', async () => {
    const kube = await start()
    const { kc } = client(kube)
    await new Watch(kc).watch(
      `/api/v1/namespaces/${NS}/pods`,
      {},
      () => {},
      () => {},
    )
    expect(kube.watchCount).toBe(1)
    await kube.close()
    expect(kube.watchCount).toBe(0)
    // The leak check fails the test if the watch's connection is still open.
  })

  it('replays the events after a version, with the label selector, then streams', async () => {
    const kube = await start()
    const { kc, api } = client(kube)
    await api.createNamespacedPod({ namespace: NS, body: pod('p1', { app: 'a' }) })
    const from = kube.pod(NS, 'p1')!.metadata.resourceVersion
    await api.createNamespacedPod({ namespace: NS, body: pod('p2', { app: 'b' }) })
    kube.run(NS, 'p1')
    const watched: string[] = []
    let third = () => {}
    const three = new Promise<void>((resolve) => (third = resolve))
    const controller = await new Watch(kc).watch(
      `/api/v1/namespaces/${NS}/pods`,
      { resourceVersion: from, labelSelector: 'app=a', allowWatchBookmarks: true },
      (type, object: Pod) => {
        watched.push(`${type} ${object.metadata.name} ${object.metadata.resourceVersion}`)
        if (watched.length === 3) third()
      },
      () => {},
    )
    try {
      kube.succeed(NS, 'p1')
      kube.succeed(NS, 'p2')
      kube.bookmark()
      await three
      expect(watched).toEqual(['MODIFIED p1 3', 'MODIFIED p1 4', 'BOOKMARK undefined 5'])
    } finally {
      controller.abort()
    }
  })
})

describe('with kubectl', () => {
  const run = promisify(execFile)

  async function kubectl(kube: KubeApiServer, ...args: string[]): Promise<string> {
    const home = join(dir, 'home')
    mkdirSync(home, { recursive: true })
    const config = kube.kubeconfig(dir, { namespace: NS })
    const env = { PATH: process.env.PATH ?? '', HOME: home, KUBECONFIG: config }
    const call = run(
      '/usr/bin/kubectl',
      ['--kubeconfig', config, '--request-timeout=5s', ...args],
      {
        env,
        timeout: 10_000,
      },
    )
    opened.child(call.child, `kubectl ${args.join(' ')}`)
    return (await call).stdout
  }

  it('gets pods as JSON and as a table', async () => {
    const kube = await start()
    const { api } = client(kube)
    await api.createNamespacedPod({ namespace: NS, body: pod('p1') })
    await api.createNamespacedPod({ namespace: NS, body: pod('p2') })
    kube.run(NS, 'p1')
    kube.waiting(NS, 'p2', 'ImagePullBackOff')
    const list = JSON.parse(await kubectl(kube, 'get', 'pods', '-o', 'json')) as { items: V1Pod[] }
    expect(list.items.map((p) => [p.metadata?.name, p.status?.phase])).toEqual([
      ['p1', 'Running'],
      ['p2', 'Pending'],
    ])
    const table = (await kubectl(kube, 'get', 'pods')).trim().split('\n')
    expect(table.map((line) => line.split(/\s+/).slice(0, 3))).toEqual([
      ['NAME', 'READY', 'STATUS'],
      ['p1', '1/1', 'Running'],
      ['p2', '0/1', 'ImagePullBackOff'],
    ])
  })

  it.each<[string, number, string[], string, boolean]>([
    ['at once', 0, [], 'deleted', false],
    ['gracefully, waiting for it to go', 150, [], 'deleted', false],
    ['gracefully, without waiting', 60_000, ['--wait=false'], 'deleted', true],
    ['by force', 60_000, ['--grace-period=0', '--force'], 'force deleted', false],
  ])('deletes a pod %s', async (_how, deleteGraceMs, flags, said, lingers) => {
    const kube = await start({ deleteGraceMs })
    const { api } = client(kube)
    await api.createNamespacedPod({ namespace: NS, body: pod('p1') })
    kube.run(NS, 'p1')
    expect(await kubectl(kube, 'delete', 'pod', 'p1', ...flags)).toBe(`pod "p1" ${said}\n`)
    const left = kube.pod(NS, 'p1')
    expect(left !== undefined).toBe(lingers)
    if (left) expect(left.metadata.deletionTimestamp).toBeDefined()
  })

  it('watches: prints a pod created after it started', async () => {
    const kube = await start()
    const home = join(dir, 'home')
    mkdirSync(home, { recursive: true })
    const config = kube.kubeconfig(dir, { namespace: NS })
    const child = opened.child(
      spawn('/usr/bin/kubectl', ['--kubeconfig', config, 'get', 'pods', '--watch', '-o', 'name'], {
        env: { PATH: process.env.PATH ?? '', HOME: home, KUBECONFIG: config },
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    )
    const exited = new Promise((resolve) => child.once('exit', resolve))
    try {
      let out = ''
      const printed = new Promise<void>((resolve) =>
        child.stdout.on('data', (chunk: Buffer) => {
          out += chunk.toString()
          if (out.includes('pod/late')) resolve()
        }),
      )
      await kube.waitForWatches(1, 10_000)
      const { api } = client(kube)
      await api.createNamespacedPod({ namespace: NS, body: pod('late') })
      await printed
      expect(out).toBe('pod/late\n')
    } finally {
      child.kill()
      await exited
    }
  })
})
