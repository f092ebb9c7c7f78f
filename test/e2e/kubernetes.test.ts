/**
 * Kubernetes clusters as targets, end to end: a real `lockstep server` process with a targets
 * file, driving the test Kubernetes API server (`test/kube/api-server.ts`) through the real
 * client. The test plays the kubelet: it moves each Pod through its phases and container states
 * as a node would, and reads what the scheduler asked of the cluster.
 */
import { execFile } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { KubeApiServer } from '../kube/api-server.ts'
import type { KubeApiServerOptions, Pod } from '../kube/api-server.ts'
import { checkLeaks } from '../leaks.ts'
import { Cluster, WORKBENCH } from './cluster.ts'

const opened = checkLeaks()
const run = promisify(execFile)

const NS = 'batch'
const image = (script = 'true') => ({ image: 'busybox:1.36', command: ['sh', '-c', script] })

let kube: KubeApiServer | undefined
let cluster: Cluster

beforeEach(() => {
  cluster = new Cluster({ databaseUrl: '', opened })
})

afterEach(async () => {
  await cluster.stopAll()
  await kube?.close()
  kube = undefined
})

/** Starts the test API server and writes a targets file of one cluster pointing at it. */
/**
 * A kubelet starts a new Pod a moment later, unless by then the Pod is gone (the scheduler
 * deleted it once its outcome was stored) or has moved on (the test ended it first).
 */
function startSoon(k: KubeApiServer, pod: Pod): void {
  const { namespace, name } = pod.metadata
  setTimeout(() => {
    if (k.pod(namespace, name)?.status.phase === 'Pending') k.run(namespace, name)
  }, 5)
}

async function clusterTarget(
  availability: number,
  kubelet?: KubeApiServerOptions['kubelet'],
): Promise<string> {
  kube = await KubeApiServer.start(kubelet === undefined ? {} : { kubelet })
  const kubeconfig = kube.kubeconfig(cluster.dir, { namespace: NS, token: 'cluster-a-token' })
  const file = join(cluster.dir, 'targets.yaml')
  writeFileSync(
    file,
    [
      'targets:',
      '  - name: cluster-a',
      '    kind: kubernetes',
      `    kubeconfig: ./${kubeconfig.split('/').pop()}`,
      `    availability: ${availability}`,
      '    labels: { zone: eu }',
      '',
    ].join('\n'),
  )
  return file
}

const podsCreated = () => kube!.requests.filter((r) => r.method === 'POST').length
const nameOf = (pod: Pod) => pod.metadata.name
const jobOf = (pod: Pod) => pod.metadata.labels?.['lockstep.dev/job']
const attemptOf = (pod: Pod) => Number(pod.metadata.labels?.['lockstep.dev/attempt'])

/** Every Pod of the namespace, once `check` holds for them. */
async function podsWhen(check: (pods: Pod[]) => boolean, timeoutMs = 20_000): Promise<Pod[]> {
  await kube!.waitFor(check, timeoutMs)
  return kube!.pods(NS)
}

describe('Kubernetes targets, end to end', () => {
  it('never runs more Pods than the availability, and cleans each one up', async () => {
    // A kubelet that starts each Pod soon and ends it a little later.
    const targets = await clusterTarget(2, (pod, k) => {
      const { namespace, name } = pod.metadata
      startSoon(k, pod)
      setTimeout(() => k.pod(namespace, name) && k.succeed(namespace, name), 30)
    })
    await cluster.server(['--targets', targets])
    const order = await cluster.client().submit({
      packet: {
        name: 'six',
        jobs: Array.from({ length: 6 }, (_, i) => ({ name: `j${i}`, op: image() })),
      },
    })
    expect((await cluster.finished(order.orderId)).counts.succeeded).toBe(6)
    expect(kube!.maxNonTerminal(NS)).toBe(2)
    expect(podsCreated()).toBe(6)
    await podsWhen((pods) => pods.length === 0)
  })

  it('gives the Pod its image, command, env and resources, and no credentials; keeps its artefacts', async () => {
    const targets = await clusterTarget(1)
    await cluster.server(['--targets', targets])
    const c = cluster.client()
    const order = await c.submit({
      packet: {
        name: 'train',
        resources: [
          { key: 'gpu.model', value: 'a100' },
          { key: 'licence', value: 'seat-7', unique: true },
        ],
        jobs: [
          {
            name: 'train',
            op: { ...image('train'), env: { EPOCHS: '3', LOCKSTEP_JOB_ID: 'forged' } },
            uses: ['gpu.model', 'licence'],
            timeoutMs: 90_500,
          },
        ],
      },
    })
    const [pod] = await podsWhen((pods) => pods.length === 1)
    const spec = pod!.spec
    const [container] = spec.containers
    const env = Object.fromEntries(container!.env!.map((e) => [e.name, e.value]))
    const [job] = await c.jobs(order.orderId)
    expect(container!.image).toBe('busybox:1.36')
    expect(container!.command).toEqual(['sh', '-c', 'train'])
    expect(env).toMatchObject({
      EPOCHS: '3',
      LOCKSTEP_RESOURCE_GPU_MODEL: 'a100',
      LOCKSTEP_RESOURCE_LICENCE: 'seat-7',
      LOCKSTEP_JOB_ID: job!.id,
      LOCKSTEP_ORDER_ID: order.orderId,
      LOCKSTEP_ATTEMPT: '1',
    })
    expect(spec.restartPolicy).toBe('Never')
    expect(spec.activeDeadlineSeconds).toBe(91)
    expect(spec.automountServiceAccountToken).toBe(false)
    expect(JSON.stringify(pod)).not.toContain('cluster-a-token')
    expect(JSON.stringify(pod)).not.toContain(WORKBENCH)
    expect(pod!.metadata.labels).toMatchObject({
      'lockstep.dev/order': order.orderId,
      'lockstep.dev/job': job!.id,
      'lockstep.dev/attempt': '1',
      'lockstep.dev/target': 'cluster-a',
      'lockstep.dev/owner': 'ana',
    })

    const artefacts = ['https://files.example/train/model.bin', 's3://runs/train/metrics.json']
    kube!.run(NS, nameOf(pod!))
    kube!.succeed(NS, nameOf(pod!), { message: JSON.stringify({ artefacts }) })
    expect((await cluster.finished(order.orderId)).state).toBe('succeeded')
    const detail = await c.job(job!.id)
    expect(detail.attempts).toEqual([
      expect.objectContaining({ state: 'succeeded', target: 'cluster-a', artefacts }),
    ])
    const logs = await run(process.execPath, ['bin/lockstep.js', 'logs', job!.id], {
      env: { ...process.env, LOCKSTEP_URL: cluster.url, LOCKSTEP_TOKEN: WORKBENCH },
    })
    for (const url of artefacts) expect(logs.stdout).toContain(url)
  })

  it('retries an OOM-killed Pod as a new attempt, and says why the first one failed', async () => {
    const targets = await clusterTarget(1, (pod, k) => {
      const { namespace, name } = pod.metadata
      setTimeout(() => {
        k.run(namespace, name)
        if (attemptOf(pod) === 1) {
          k.fail(namespace, name, { exitCode: 137, reason: 'OOMKilled' })
        } else k.succeed(namespace, name)
      }, 5)
    })
    await cluster.server(['--targets', targets])
    const c = cluster.client()
    const order = await c.submit({
      packet: {
        name: 'hungry',
        failure: { attempts: 2, backoffMs: 10 },
        jobs: [{ name: 'hungry', op: image() }],
      },
    })
    expect((await cluster.finished(order.orderId)).state).toBe('succeeded')
    const [job] = await c.jobs(order.orderId)
    const { attempts } = await c.job(job!.id)
    expect(attempts.map((a) => [a.attempt, a.state, a.reason])).toEqual([
      [1, 'failed', 'oom-killed'],
      [2, 'succeeded', undefined],
    ])
    expect(podsCreated()).toBe(2)
  })

  it('deletes the Pod of a cancelled order', async () => {
    const targets = await clusterTarget(2, (pod, k) => {
      startSoon(k, pod)
    })
    await cluster.server(['--targets', targets])
    const c = cluster.client()
    const order = await c.submit({
      packet: { name: 'long', jobs: [{ name: 'a', op: image('sleep 600') }] },
    })
    const [running] = await podsWhen((pods) => pods.some((p) => p.status.phase === 'Running'))
    // The target's fulfilments name the Pod of each attempt and its phase.
    let listed = await c.fulfilments('cluster-a', { state: 'running' })
    for (let i = 0; i < 100 && listed[0]?.unit?.phase !== 'Running'; i++) {
      await new Promise((r) => setTimeout(r, 20))
      listed = await c.fulfilments('cluster-a', { state: 'running' })
    }
    expect(listed).toEqual([
      expect.objectContaining({
        state: 'running',
        attempt: 1,
        unit: { name: nameOf(running!), phase: 'Running' },
      }),
    ])
    const cli = await run(process.execPath, ['bin/lockstep.js', 'targets', 'cluster-a'], {
      env: { ...process.env, LOCKSTEP_URL: cluster.url, LOCKSTEP_TOKEN: WORKBENCH },
    })
    expect(cli.stdout).toContain(nameOf(running!))
    await c.cancelOrder(order.orderId)
    await podsWhen((pods) => pods.length === 0)
    const [job] = await c.jobs(order.orderId)
    expect(job!.state).toBe('cancelled')
  })

  it('deletes the other running Pods of an order that fails', async () => {
    const targets = await clusterTarget(2, (pod, k) => {
      startSoon(k, pod)
    })
    await cluster.server(['--targets', targets])
    const c = cluster.client()
    const order = await c.submit({
      packet: {
        name: 'pair',
        jobs: [
          { name: 'breaks', op: image('exit 3') },
          { name: 'long', op: image('sleep 600') },
        ],
      },
    })
    const pods = await podsWhen((p) => p.filter((x) => x.status.phase === 'Running').length === 2)
    const jobs = new Map((await c.jobs(order.orderId)).map((j) => [j.name, j.id]))
    const breaks = pods.find((p) => jobOf(p) === jobs.get('breaks'))!
    kube!.fail(NS, nameOf(breaks), { exitCode: 3, message: 'no input' })
    const ended = await cluster.finished(order.orderId)
    expect(ended.state).toBe('failed')
    expect(ended.reason).toMatch(/breaks failed: exit-code 3: no input/)
    await podsWhen((p) => p.length === 0)
    expect((await c.job(jobs.get('long')!)).attempts.map((a) => a.state)).toEqual(['cancelled'])
  })

  it('after a SIGKILL, adopts the Pods it ran, ends the ones that are gone, and creates no duplicate', async () => {
    const targets = await clusterTarget(3, (pod, k) => {
      startSoon(k, pod)
    })
    const first = await cluster.server(['--targets', targets])
    const c = cluster.client()
    const order = await c.submit({
      packet: {
        name: 'three',
        failure: { attempts: 2, backoffMs: 10 },
        jobs: ['done', 'gone', 'runs'].map((name) => ({ name, op: image() })),
      },
    })
    const pods = await podsWhen((p) => p.filter((x) => x.status.phase === 'Running').length === 3)
    const jobs = new Map((await c.jobs(order.orderId)).map((j) => [j.name, j.id]))
    const podOf = (name: string) => pods.find((p) => jobOf(p) === jobs.get(name))!
    first.child.kill('SIGKILL')
    await first.exited
    // While the scheduler is down: one Pod ends, one is deleted by someone else, and a Pod of
    // an attempt the scheduler never made appears with its labels.
    kube!.succeed(NS, nameOf(podOf('done')))
    kube!.remove(NS, nameOf(podOf('gone')))
    const runs = podOf('runs')
    const stray = {
      metadata: {
        name: `${nameOf(runs)}-stray`,
        namespace: NS,
        labels: { ...runs.metadata.labels, 'lockstep.dev/attempt': '9' },
      },
      spec: runs.spec,
    }
    const created = await fetch(`${kube!.url}/api/v1/namespaces/${NS}/pods`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer cluster-a-token' },
      body: JSON.stringify(stray),
    })
    expect(created.status).toBe(201)
    const before = podsCreated()

    await cluster.server(['--targets', targets])
    // The gone one is tried again as attempt 2; the stray Pod is deleted.
    await podsWhen(
      (p) =>
        p.some((x) => jobOf(x) === jobs.get('gone') && attemptOf(x) === 2) &&
        !p.some((x) => nameOf(x).endsWith('-stray')),
    )
    for (const p of kube!.pods(NS)) {
      if (p.status.phase !== 'Running') kube!.run(NS, nameOf(p))
      kube!.succeed(NS, nameOf(p))
    }
    expect((await cluster.finished(order.orderId)).state).toBe('succeeded')
    expect(podsCreated() - before).toBe(1)
    const attempts = async (name: string) =>
      (await c.job(jobs.get(name)!)).attempts.map((a) => [a.attempt, a.state, a.reason])
    expect(await attempts('done')).toEqual([[1, 'succeeded', undefined]])
    expect(await attempts('runs')).toEqual([[1, 'succeeded', undefined]])
    expect(await attempts('gone')).toEqual([
      [1, 'failed', 'pod-deleted'],
      [2, 'succeeded', undefined],
    ])
  })

  it('reports a cluster that does not answer, and gives it no work until it does', async () => {
    const targets = await clusterTarget(1, (pod, k) => {
      const { namespace, name } = pod.metadata
      setTimeout(() => {
        k.run(namespace, name)
        k.succeed(namespace, name)
      }, 5)
    })
    await kube!.pause()
    const server = await cluster.server(['--targets', targets])
    const c = cluster.client()
    const order = await c.submit({ packet: { name: 'p', jobs: [{ name: 'a', op: image() }] } })
    let listed: { target: { id: string }; problem?: string }[] = []
    for (
      let i = 0;
      i < 200 && listed.find((t) => t.target.id === 'cluster-a')?.problem === undefined;
      i++
    ) {
      listed = await c.workers()
      await new Promise((r) => setTimeout(r, 25))
    }
    expect(listed.find((t) => t.target.id === 'cluster-a')?.problem).toMatch(
      /cluster-a|ECONNREFUSED|answer/,
    )
    expect(server.stderr()).toMatch(/cluster-a/)
    const cli = await run(process.execPath, ['bin/lockstep.js', 'targets'], {
      env: { ...process.env, LOCKSTEP_URL: cluster.url, LOCKSTEP_TOKEN: WORKBENCH },
    })
    expect(cli.stdout).toMatch(/cluster-a.*\n?.*problem/)
    expect((await c.jobs(order.orderId))[0]!.state).toBe('ready')
    await kube!.resume()
    expect((await cluster.finished(order.orderId)).state).toBe('succeeded')
  })

  it('refuses to start on a bad targets file, naming the file, the field and the problem', async () => {
    const file = join(cluster.dir, 'targets.yaml')
    writeFileSync(
      file,
      'targets:\n  - name: cluster-a\n    kind: kubernetes\n    kubeconfig: ./k.yaml\n    availability: -1\n',
    )
    await expect(cluster.server(['--targets', file])).rejects.toThrow(
      /targets\.yaml: targets\[0\]\.availability: /,
    )
  })
})
