/**
 * The Kubernetes driver with the real `@kubernetes/client-node` 1.4 against the tests' API
 * server (`test/kube/api-server.ts`): Pods are created, watched, classified and deleted over
 * HTTP as on a cluster; the test plays the kubelet, and someone else, and the network.
 */
import { randomUUID } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { FakeClock } from '../../src/core/clock.ts'
import type { Assignment } from '../../src/core/protocol.ts'
import { SchedulerService } from '../../src/service/service.ts'
import { SqliteStore } from '../../src/store/sqlite-store.ts'
import { PushLoop } from '../../src/targets/push-loop.ts'
import { KubernetesDriver } from '../../src/targets/kubernetes/driver.ts'
import type { KubernetesDriverOptions } from '../../src/targets/kubernetes/driver.ts'
import { podManifest, podName } from '../../src/targets/kubernetes/pod.ts'
import type { ResolvedKubernetesTarget } from '../../src/targets/kubernetes/targets-file.ts'
import type { AttemptOutcome } from '../../src/targets/target-driver.ts'
import { KubeApiServer } from '../kube/api-server.ts'
import type { Pod } from '../kube/api-server.ts'
import { checkLeaks } from '../leaks.ts'

const NS = 'batch'

const opened = checkLeaks()

let dir: string
let kube: KubeApiServer
let drivers: KubernetesDriver[]
let problems: (string | undefined)[]
let errors: unknown[]

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'lockstep-kube-'))
  kube = await KubeApiServer.start()
  drivers = []
  problems = []
  errors = []
})

afterEach(async () => {
  for (const d of drivers) await d.close()
  await kube.close()
  rmSync(dir, { recursive: true, force: true })
})

function target(over: Partial<ResolvedKubernetesTarget> = {}): ResolvedKubernetesTarget {
  return {
    kind: 'kubernetes',
    name: 'cluster-a',
    kubeconfig: kube.kubeconfig(dir, { namespace: NS }),
    availability: 3,
    labels: { zone: 'eu' },
    imagePullTimeoutMs: 300_000,
    ...over,
  }
}

function driver(
  over: Partial<ResolvedKubernetesTarget> = {},
  options: KubernetesDriverOptions = {},
): KubernetesDriver {
  const d = new KubernetesDriver(target(over), {
    backoff: { initialMs: 10, maxMs: 100 },
    onProblem: (m) => problems.push(m),
    onError: (e) => errors.push(e),
    ...options,
  })
  drivers.push(d)
  return d
}

async function opens(
  over: Partial<ResolvedKubernetesTarget> = {},
  options: KubernetesDriverOptions = {},
): Promise<KubernetesDriver> {
  const d = driver(over, options)
  await d.open()
  expect(d.ready).toBe(true)
  return d
}

function assignment(over: Partial<Assignment> = {}): Assignment {
  const jobId = randomUUID()
  return {
    orderId: randomUUID(),
    jobId,
    productId: jobId,
    name: 'train',
    attempt: 1,
    target: 'cluster-a',
    op: { image: 'registry.example/train:1', command: ['python', 'train.py'] },
    resources: [],
    timeoutMs: 60_000,
    inputs: [],
    ...over,
  }
}

const nameOf = (a: Assignment) => podName(a.jobId, a.attempt)
const creates = () => kube.requests.filter((r) => r.method === 'POST').length

/** Resolves once the Pod exists on the server. */
function created(a: Assignment): Promise<void> {
  return kube.waitFor((pods) => pods.some((p) => p.metadata.name === nameOf(a)))
}

/** Resolves once the Pod is gone from the server. */
function gone(a: Assignment): Promise<void> {
  return kube.waitFor((pods) => !pods.some((p) => p.metadata.name === nameOf(a)))
}

/**
 * An ended attempt's Pod stays until its outcome is stored (the push loop says so with
 * `recorded`), so that a scheduler that dies first reads the outcome from the Pod again; then
 * it goes.
 */
async function keptUntilRecorded(d: KubernetesDriver, a: Assignment): Promise<void> {
  await new Promise((r) => setTimeout(r, 50))
  expect(kube.pod(NS, nameOf(a))).toBeDefined()
  expect(kube.requests.filter((r) => r.method === 'DELETE')).toEqual([])
  d.recorded({ jobId: a.jobId, attempt: a.attempt })
  await gone(a)
}

/** Resolves once `check` holds, looking every few milliseconds (for what only the driver knows). */
async function eventually(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`waited ${timeoutMs} ms for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

/** The outcome, or 'pending' if it has not come by the next turns of the event loop. */
async function settledYet(p: Promise<AttemptOutcome>): Promise<AttemptOutcome | 'pending'> {
  return Promise.race([p, new Promise<'pending'>((r) => setTimeout(() => r('pending'), 30))])
}

/** A client of the test's own, to play someone else with the same cluster. */
function someoneElse(): CoreV1Api {
  const kc = new KubeConfig()
  kc.loadFromFile(kube.kubeconfig(dir, { namespace: NS, file: 'someone-else' }))
  return kc.makeApiClient(CoreV1Api)
}

describe('the Kubernetes driver', () => {
  it('registers as a kubernetes target that runs images, with no slot until it has listed', async () => {
    const d = driver()
    expect(d.registration).toEqual({
      id: 'cluster-a',
      kind: 'kubernetes',
      slots: 3,
      labels: { zone: 'eu' },
      runs: ['image'],
    })
    expect(d.availability()).toBe(0)
    await d.open()
    expect(d.availability()).toBe(3)
    expect(problems).toEqual([])
    expect(kube.requests.map((r) => `${r.method} ${r.path}`).slice(0, 2)).toEqual([
      `GET /api/v1/namespaces/${NS}/pods`,
      `GET /api/v1/namespaces/${NS}/pods`,
    ])
    expect(kube.requests[0]!.query).toContain(
      'labelSelector=app.kubernetes.io%2Fmanaged-by%3Dlockstep%2Clockstep.dev%2Ftarget%3Dcluster-a',
    )
  })

  it('runs an attempt as one Pod, reads its artefacts, then deletes the Pod', async () => {
    const d = await opens()
    const a = assignment()
    const outcome = d.start(a)
    expect(d.availability()).toBe(2)
    await created(a)
    const pod = kube.pod(NS, nameOf(a))!
    expect(pod.metadata.labels).toMatchObject({
      'app.kubernetes.io/managed-by': 'lockstep',
      'lockstep.dev/target': 'cluster-a',
      'lockstep.dev/job': a.jobId,
    })
    expect(pod.spec.automountServiceAccountToken).toBe(false)
    expect(pod.spec.containers[0]!.env).toContainEqual({ name: 'LOCKSTEP_JOB_ID', value: a.jobId })
    expect(d.unit({ jobId: a.jobId, attempt: 1 })).toEqual({ name: nameOf(a), phase: 'Pending' })

    kube.run(NS, nameOf(a))
    await eventually(() => d.unit(a)?.phase === 'Running', 'the Pod to run')
    expect(await settledYet(outcome)).toBe('pending')
    kube.succeed(NS, nameOf(a), {
      message: '{"artefacts": ["s3://results/model.bin", "https://example.org/report.html"]}',
    })
    expect(await outcome).toEqual({
      result: {
        ok: true,
        exitCode: 0,
        artefacts: ['s3://results/model.bin', 'https://example.org/report.html'],
      },
    })
    await keptUntilRecorded(d, a)
    await eventually(() => d.availability() === 3, 'the slot to free')
    expect(creates()).toBe(1)
    expect(errors).toEqual([])
  })

  it.each([
    {
      name: 'an OOMKilled container fails as oom-killed',
      act: (pod: string) => kube.fail(NS, pod, { exitCode: 137, reason: 'OOMKilled' }),
      result: {
        ok: false,
        exitCode: 137,
        reason: 'oom-killed',
        message: 'the container ran out of memory and was killed',
      },
    },
    {
      name: 'a Pod past its deadline fails as deadline-exceeded',
      act: (pod: string) => kube.deadline(NS, pod),
      result: {
        ok: false,
        reason: 'deadline-exceeded',
        message: 'Pod was active on the node longer than the specified deadline',
      },
    },
    {
      name: 'an evicted Pod fails as evicted, with the kubelet’s words',
      act: (pod: string) =>
        kube.evict(NS, pod, { message: 'The node was low on resource: memory.' }),
      result: { ok: false, reason: 'evicted', message: 'The node was low on resource: memory.' },
    },
    {
      name: 'exit 3 fails as exit-code with the termination message',
      act: (pod: string) => kube.fail(NS, pod, { exitCode: 3, message: 'no input found' }),
      result: { ok: false, exitCode: 3, reason: 'exit-code', message: 'no input found' },
    },
    {
      name: 'an artefact that is no URL fails as artefacts',
      act: (pod: string) => kube.succeed(NS, pod, { message: 'not a url' }),
      result: {
        ok: false,
        exitCode: 0,
        reason: 'artefacts',
        message: 'artefact 1 is not a URL of at most 2048 characters: "not a url"',
      },
    },
  ])('$name, and the Pod is deleted', async ({ act, result }) => {
    const d = await opens()
    const a = assignment()
    const outcome = d.start(a)
    await created(a)
    kube.run(NS, nameOf(a))
    act(nameOf(a))
    expect(await outcome).toEqual({ result })
    await keptUntilRecorded(d, a)
  })

  it('fails an invalid image name at once as image-pull', async () => {
    const d = await opens()
    const a = assignment()
    const outcome = d.start(a)
    await created(a)
    kube.waiting(NS, nameOf(a), 'InvalidImageName', 'couldn\'t parse image name "UPPER"')
    expect(await outcome).toEqual({
      result: {
        ok: false,
        reason: 'image-pull',
        message:
          'cannot pull registry.example/train:1: InvalidImageName: couldn\'t parse image name "UPPER"',
      },
    })
    await keptUntilRecorded(d, a)
  })

  it('waits out an image pull back-off up to the pull timeout, then fails as image-pull', async () => {
    const clock = new FakeClock()
    const d = await opens({}, { clock })
    const a = assignment()
    const outcome = d.start(a)
    await created(a)
    kube.waiting(NS, nameOf(a), 'ErrImagePull', 'manifest unknown')
    // The driver looks again when the pull timeout runs out: that look is its one timer.
    await eventually(() => clock.pendingTimers() === 1, 'the driver to see the pull fail')
    kube.waiting(NS, nameOf(a), 'ImagePullBackOff', 'Back-off pulling image')
    clock.advance(299_999)
    expect(await settledYet(outcome)).toBe('pending')
    clock.advance(1)
    expect(await outcome).toEqual({
      result: {
        ok: false,
        reason: 'image-pull',
        message:
          'cannot pull registry.example/train:1: ImagePullBackOff: Back-off pulling image (for 300 s)',
      },
    })
    await keptUntilRecorded(d, a)
  })

  it('lets a pull that recovers go on', async () => {
    const clock = new FakeClock()
    const d = await opens({}, { clock })
    const a = assignment()
    const outcome = d.start(a)
    await created(a)
    kube.waiting(NS, nameOf(a), 'ImagePullBackOff')
    await eventually(() => clock.pendingTimers() === 1, 'the driver to see the pull fail')
    kube.run(NS, nameOf(a))
    await eventually(() => clock.pendingTimers() === 0, 'the driver to see the Pod run')
    clock.advance(600_000)
    expect(await settledYet(outcome)).toBe('pending')
    kube.succeed(NS, nameOf(a))
    expect((await outcome).result.ok).toBe(true)
  })

  it('fails an attempt whose Pod someone else deletes as pod-deleted', async () => {
    const d = await opens()
    const a = assignment()
    const outcome = d.start(a)
    await created(a)
    kube.run(NS, nameOf(a))
    kube.remove(NS, nameOf(a))
    expect(await outcome).toEqual({
      result: {
        ok: false,
        reason: 'pod-deleted',
        message: `the Pod ${nameOf(a)} was deleted before it ended`,
      },
    })
  })

  it('fails as pod-deleted at once when someone else deletes the Pod with a grace period', async () => {
    await kube.close()
    kube = await KubeApiServer.start({ deleteGraceMs: 10_000 })
    const d = await opens()
    const a = assignment()
    const outcome = d.start(a)
    await created(a)
    kube.run(NS, nameOf(a))
    await someoneElse().deleteNamespacedPod({ name: nameOf(a), namespace: NS })
    expect((await outcome).result.reason).toBe('pod-deleted')
    // The Pod still holds its slot while it terminates.
    expect(d.availability()).toBe(2)
  })

  it('stops an attempt by deleting its Pod', async () => {
    const d = await opens()
    const a = assignment()
    const outcome = d.start(a)
    await created(a)
    kube.run(NS, nameOf(a))
    d.stop({ jobId: a.jobId, attempt: 1, reason: 'order cancelled' })
    expect(await outcome).toEqual({
      result: { ok: false, reason: 'cancelled', message: 'order cancelled' },
    })
    await gone(a)
    expect(errors).toEqual([])
  })

  it('deletes the Pod of an attempt stopped while its create is in flight', async () => {
    const d = await opens()
    const a = assignment()
    const outcome = d.start(a)
    d.stop({ jobId: a.jobId, attempt: 1, reason: 'timeout' })
    expect((await outcome).result.reason).toBe('cancelled')
    await eventually(
      () => kube.requests.some((r) => r.method === 'DELETE'),
      'the Pod to be deleted once its create answered',
    )
    await gone(a)
    expect(creates()).toBe(1)
  })

  it('never runs more Pods than its availability', async () => {
    const d = await opens({ availability: 2 })
    const all = [1, 2, 3, 4, 5].map(() => assignment())
    const outcomes = all.map((a) => d.start(a))
    expect(d.availability()).toBe(0)
    for (const o of outcomes.slice(2)) {
      expect((await o).result).toEqual({
        ok: false,
        reason: 'no-capacity',
        message: 'cluster-a runs 2 Pods of its availability of 2',
      })
    }
    await kube.waitFor((pods) => pods.length === 2)
    for (const a of all.slice(0, 2)) kube.succeed(NS, nameOf(a))
    await Promise.all(outcomes.slice(0, 2))
    expect(kube.maxNonTerminal(NS)).toBe(2)
    expect(creates()).toBe(2)
  })

  it('keeps its connections to the API server alive instead of opening one per Pod', async () => {
    const d = await opens({ availability: 20 })
    const before = kube.connections
    // One Pod after another: each create and delete can take the connection the last one left.
    for (let i = 0; i < 10; i++) {
      const a = assignment()
      const outcome = d.start(a)
      await created(a)
      kube.succeed(NS, nameOf(a))
      await outcome
      d.recorded({ jobId: a.jobId, attempt: 1 })
      await gone(a)
    }
    // 20 requests, 10 creates and 10 deletes, over a connection or two, not one each.
    expect(kube.connections - before).toBeLessThanOrEqual(2)
  })

  it('counts Pods of its target it does not own against its availability', async () => {
    const other = assignment()
    await someoneElse().createNamespacedPod({
      namespace: NS,
      body: podManifest(other, { name: 'cluster-a', namespace: NS }),
    })
    const d = await opens({ availability: 2 })
    expect(d.availability()).toBe(1)
  })

  it('starts the same attempt once, however often it is asked', async () => {
    const d = await opens()
    const a = assignment()
    const first = d.start(a)
    const second = d.start(a)
    expect(second).toBe(first)
    await created(a)
    kube.succeed(NS, nameOf(a))
    expect((await first).result.ok).toBe(true)
    expect(creates()).toBe(1)
  })

  it('adopts a Pod that already exists for the attempt (409 AlreadyExists)', async () => {
    const a = assignment()
    await someoneElse().createNamespacedPod({
      namespace: NS,
      body: podManifest(a, { name: 'cluster-a', namespace: NS }),
    })
    const d = await opens()
    const outcome = d.start(a)
    await eventually(() => creates() === 2, 'the second create')
    kube.succeed(NS, nameOf(a), { message: 'https://example.org/a' })
    expect(await outcome).toEqual({
      result: { ok: true, exitCode: 0, artefacts: ['https://example.org/a'] },
    })
    expect(kube.maxNonTerminal(NS)).toBe(1)
  })

  it.each([
    { status: 403, words: 'injected failure of POST' },
    { status: 422, words: 'injected failure of POST' },
    { status: 409, words: 'injected failure of POST' },
  ])(
    'fails a create refused with $status as pod-refused, with the API’s words',
    async ({ status, words }) => {
      const d = await opens()
      kube.failNext(1, status, { method: 'POST' })
      const a = assignment()
      const { result } = await d.start(a)
      expect(result).toMatchObject({ ok: false, reason: 'pod-refused' })
      expect(result.message).toContain(`cluster-a refused the Pod ${nameOf(a)}: ${status} ${words}`)
      expect(d.availability()).toBe(3)
    },
  )

  it('fails a create answered 503 three times as target-unreachable', async () => {
    const d = await opens()
    kube.failNext(3, 503, { method: 'POST' })
    const { result } = await d.start(assignment())
    expect(result).toMatchObject({ ok: false, reason: 'target-unreachable' })
    expect(result.message).toContain('503')
    expect(creates()).toBe(3)
  })

  it('sends a create answered 503 again, and the attempt runs on its one Pod', async () => {
    const d = await opens()
    kube.failNext(1, 503, { method: 'POST' })
    const a = assignment()
    const outcome = d.start(a)
    await eventually(() => kube.maxNonTerminal(NS) === 1, 'the Pod')
    kube.succeed(NS, nameOf(a))
    expect((await outcome).result).toMatchObject({ ok: true })
    expect(creates()).toBe(2)
    expect(kube.maxNonTerminal(NS)).toBe(1)
  })

  it('refuses an operation that is not an image', async () => {
    const d = await opens()
    const { result } = await d.start(assignment({ op: { exec: ['true'] } }))
    expect(result).toEqual({
      ok: false,
      reason: 'refused',
      message: 'a Kubernetes target runs image operations only, not exec',
    })
    expect(creates()).toBe(0)
  })
})

describe('the Kubernetes driver and its connection', () => {
  it('rides out a watch that ends cleanly: no outcome is missed', async () => {
    const d = await opens()
    const a = assignment()
    const outcome = d.start(a)
    await created(a)
    kube.dropWatches()
    kube.succeed(NS, nameOf(a), { message: 'https://example.org/a' })
    expect((await outcome).result).toMatchObject({ ok: true, artefacts: ['https://example.org/a'] })
    expect(problems).toEqual([])
  })

  it('rides out a watch that breaks: it watches again from where it was, and reports no problem', async () => {
    const d = await opens()
    const [a, b] = [assignment(), assignment()]
    const outcomes = [d.start(a), d.start(b)]
    await created(a)
    await created(b)
    const lists = kube.requests.filter((r) => r.method === 'GET' && !r.query.includes('watch'))
    kube.dropWatches({ abrupt: true })
    kube.succeed(NS, nameOf(a))
    kube.fail(NS, nameOf(b), { exitCode: 2 })
    expect((await outcomes[0]!).result.ok).toBe(true)
    expect((await outcomes[1]!).result).toMatchObject({ reason: 'exit-code', exitCode: 2 })
    await kube.waitForWatches(1)
    // Watched again from its last version: no second list was needed.
    expect(
      kube.requests.filter((r) => r.method === 'GET' && !r.query.includes('watch')).length,
    ).toBe(lists.length)
    expect(problems).toEqual([])
  })

  it('lists again after 410 Gone and misses nothing that happened meanwhile', async () => {
    const d = await opens()
    const [a, b, c] = [assignment(), assignment(), assignment()]
    const outcomes = [d.start(a), d.start(b), d.start(c)]
    for (const x of [a, b, c]) await created(x)
    // The network breaks; meanwhile one Pod ends, one is removed, and the history is forgotten.
    await kube.pause()
    await eventually(() => !d.ready, 'the driver to notice')
    kube.succeed(NS, nameOf(a), { message: 'https://example.org/a' })
    kube.remove(NS, nameOf(b))
    kube.compact()
    const lists = kube.requests.filter((r) => r.method === 'GET' && !r.query.includes('watch'))
    await kube.resume()
    expect((await outcomes[0]!).result).toEqual({
      ok: true,
      exitCode: 0,
      artefacts: ['https://example.org/a'],
    })
    expect((await outcomes[1]!).result.reason).toBe('pod-deleted')
    expect(await settledYet(outcomes[2]!)).toBe('pending')
    await eventually(() => d.ready, 'the driver to see the cluster again')
    // The watch from its old version was refused as expired: it listed again.
    expect(
      kube.requests.filter((r) => r.method === 'GET' && !r.query.includes('watch')).length,
    ).toBe(lists.length + 1)
    kube.succeed(NS, nameOf(c))
    expect((await outcomes[2]!).result.ok).toBe(true)
  })

  it('fails an attempt whose Pod came and went while it could not watch', async () => {
    // A cluster that has seen changes: a watch from version 0 would mean "from now" instead.
    await someoneElse().createNamespacedPod({
      namespace: 'elsewhere',
      body: podManifest(assignment(), { name: 'cluster-b', namespace: 'elsewhere' }),
    })
    const d = await opens()
    // Lists and watches fail for a while; creates still pass.
    kube.failNext(5, 503, { method: 'GET', path: `/api/v1/namespaces/${NS}/pods` })
    kube.dropWatches({ abrupt: true })
    await eventually(() => !d.ready, 'the driver to notice')
    const a = assignment()
    const outcome = d.start(a)
    await eventually(() => creates() === 2 && d.unit(a) !== undefined, 'the create to answer')
    kube.remove(NS, nameOf(a))
    kube.compact()
    // Its Pod was never in view, so no deletion event can come: the new list tells.
    expect((await outcome).result).toEqual({
      ok: false,
      reason: 'pod-deleted',
      message: `the Pod ${nameOf(a)} was deleted before it ended`,
    })
    expect(problems[0]).toContain('503')
  })

  it('reports a cluster that does not answer, offers no slot, and recovers', async () => {
    await kube.pause()
    const d = driver()
    await d.open()
    expect(d.ready).toBe(false)
    expect(d.availability()).toBe(0)
    expect(problems).toHaveLength(1)
    expect(problems[0]).toMatch(
      new RegExp(`^cannot list and watch Pods at ${kube.url}: .*ECONNREFUSED`),
    )
    await kube.resume()
    await eventually(() => d.ready, 'the driver to reconnect')
    expect(problems).toEqual([problems[0], undefined])
    expect(d.availability()).toBe(3)
  })

  it('fails a create while the cluster does not answer as target-unreachable', async () => {
    const d = await opens()
    await kube.pause()
    const { result } = await d.start(assignment())
    expect(result).toMatchObject({ ok: false, reason: 'target-unreachable' })
    // Refused, or cut on a kept-alive connection the paused server closed.
    expect(result.message).toMatch(/ECONNREFUSED|socket hang up/)
    await eventually(() => d.availability() === 0, 'the slot count to drop')
  })

  it('reports a list refused by the cluster', async () => {
    kube.failNext(1, 403, { method: 'GET' })
    const d = driver()
    await d.open()
    expect(problems[0]).toBe(
      `cannot list and watch Pods at ${kube.url}: 403 injected failure of GET /api/v1/namespaces/${NS}/pods`,
    )
    await eventually(() => d.ready, 'the driver to list again')
    expect(problems).toEqual([problems[0], undefined])
  })

  it('reports a kubeconfig it cannot read, naming it, and never throws', async () => {
    const missing = join(dir, 'nowhere.yaml')
    const d = driver({ kubeconfig: missing })
    await d.open()
    expect(d.availability()).toBe(0)
    expect(problems[0]).toMatch(new RegExp(`^cannot read the kubeconfig ${missing}: .*ENOENT`))
    const { result } = await d.start(assignment())
    expect(result.reason).toBe('target-unreachable')
    // Put in place later, it is read on the next try.
    kube.kubeconfig(dir, { namespace: NS, file: 'nowhere.yaml' })
    await eventually(() => d.ready, 'the kubeconfig to be read')
    expect(problems.at(-1)).toBeUndefined()
  })

  it('reports a context the kubeconfig does not have', async () => {
    const d = driver({ context: 'prod' })
    await d.open()
    expect(problems[0]).toMatch(/has no context 'prod'$/)
  })

  it('uses the namespace of the target over the context’s', async () => {
    const d = await opens({ namespace: 'other' })
    const a = assignment()
    const outcome = d.start(a)
    await kube.waitFor((pods) => pods.some((p) => p.metadata.namespace === 'other'))
    kube.succeed('other', nameOf(a))
    expect((await outcome).result.ok).toBe(true)
  })

  it('settles the outcomes it waits for when it closes, and leaves the Pods running', async () => {
    const d = await opens()
    const a = assignment()
    const outcome = d.start(a)
    await created(a)
    kube.run(NS, nameOf(a))
    await d.close()
    expect((await outcome).result).toMatchObject({ ok: false, reason: 'cancelled' })
    expect(kube.pod(NS, nameOf(a))?.status.phase).toBe('Running')
    expect(d.availability()).toBe(0)
  })

  it('closes while the cluster does not answer, without waiting for it', async () => {
    await kube.pause()
    const d = driver()
    await d.open()
    const started = Date.now()
    await d.close()
    expect(Date.now() - started).toBeLessThan(1000)
  })
})

describe('the Kubernetes driver after a restart', () => {
  async function existing(a: Assignment): Promise<void> {
    await someoneElse().createNamespacedPod({
      namespace: NS,
      body: podManifest(a, { name: 'cluster-a', namespace: NS }),
    })
  }

  it('adopts the Pods it finds, fails those gone, deletes the unknown, creates none', async () => {
    const running = assignment()
    const finished = assignment()
    const unknown = assignment()
    const lost = assignment()
    for (const a of [running, finished, unknown]) await existing(a)
    kube.run(NS, nameOf(running))
    kube.succeed(NS, nameOf(finished), { message: '["https://example.org/f"]' })
    kube.run(NS, nameOf(unknown))
    const before = creates()

    const d = driver()
    const outcomes = d.resume(
      [running, finished, lost].map((a) => ({ jobId: a.jobId, attempt: 1 })),
    )
    await d.open()
    expect((await outcomes[1]!).result).toEqual({
      ok: true,
      exitCode: 0,
      artefacts: ['https://example.org/f'],
    })
    expect((await outcomes[2]!).result).toEqual({
      ok: false,
      reason: 'pod-deleted',
      message: `the Pod ${nameOf(lost)} is gone: it was deleted while the scheduler was away`,
    })
    await gone(unknown)
    expect(kube.pod(NS, nameOf(finished))).toBeDefined()
    d.recorded({ jobId: finished.jobId, attempt: 1 })
    await gone(finished)
    expect(await settledYet(outcomes[0]!)).toBe('pending')
    expect(d.unit(running)).toEqual({ name: nameOf(running), phase: 'Running' })
    expect(d.availability()).toBe(2)

    // A start of an adopted attempt is the same attempt, not a second Pod.
    expect(d.start(running)).toBe(outcomes[0])
    kube.fail(NS, nameOf(running), { exitCode: 1, message: 'boom' })
    expect((await outcomes[0]!).result).toEqual({
      ok: false,
      exitCode: 1,
      reason: 'exit-code',
      message: 'boom',
    })
    expect(creates()).toBe(before)
  })

  it('adopts after it has listed, too, and leaves unknown Pods alone until resume', async () => {
    const running = assignment()
    const unknown = assignment()
    await existing(running)
    await existing(unknown)
    const d = await opens()
    expect(d.availability()).toBe(1)
    expect(kube.pods(NS)).toHaveLength(2)
    const [outcome] = d.resume([{ jobId: running.jobId, attempt: 1 }])
    await gone(unknown)
    kube.succeed(NS, nameOf(running))
    expect((await outcome!).result.ok).toBe(true)
    d.recorded({ jobId: running.jobId, attempt: 1 })
    await gone(running)
    expect(creates()).toBe(2)
  })

  it('waits for the first list before it judges, however long the cluster takes', async () => {
    const running = assignment()
    await existing(running)
    await kube.pause()
    const d = driver()
    await d.open()
    const [outcome] = d.resume([{ jobId: running.jobId, attempt: 1 }])
    expect(await settledYet(outcome!)).toBe('pending')
    await kube.resume()
    await eventually(() => d.ready, 'the driver to list')
    expect(await settledYet(outcome!)).toBe('pending')
    kube.succeed(NS, nameOf(running))
    expect((await outcome!).result.ok).toBe(true)
  })
})

describe('the Kubernetes driver under the push loop', () => {
  it('fills the cluster up to its availability and no further, and every job succeeds', async () => {
    await kube.close()
    // The kubelet starts every Pod as it is created; the test ends them one at a time.
    kube = await KubeApiServer.start({
      kubelet: (pod, k) => k.run(pod.metadata.namespace, pod.metadata.name),
    })
    const service = opened.service(
      await SchedulerService.start({
        store: new SqliteStore({ path: join(dir, 'db') }),
        engine: { cacheTimeoutMs: 0, depsTimeoutMs: 0 },
      }),
    )
    const d = await opens({ availability: 3 })
    const loop = new PushLoop(service, [d], { idleMs: 20 })
    try {
      await loop.start()
      const op = { image: 'busybox:1', command: ['true'] }
      const jobs = ['a', 'b', 'c', 'd', 'e', 'f', 'g'].map((name) => ({ name, op }))
      const order = await service.submitPacket({ name: 'p', jobs }, {}, 'ana')
      const running = (pods: Pod[]) => pods.filter((p) => p.status.phase === 'Running').length
      await kube.waitFor((pods) => running(pods) === 3)
      for (let done = 0; done < jobs.length; done++) {
        await kube.waitFor((pods) => pods.some((p) => p.status.phase === 'Running'))
        const next = kube.pods(NS).find((p) => p.status.phase === 'Running')!
        kube.succeed(NS, next.metadata.name)
      }
      await eventually(() => creates() === jobs.length && kube.pods(NS).length === 0, 'the end')
      await service.durable()
      const f = await service.fulfilment(order.orderId)
      expect(f.counts.succeeded).toBe(jobs.length)
      expect(kube.maxNonTerminal(NS)).toBe(3)
      expect(creates()).toBe(jobs.length)
    } finally {
      await loop.close()
      await service.close()
    }
  })
})
