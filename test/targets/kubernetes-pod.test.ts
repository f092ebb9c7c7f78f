/**
 * An attempt's Pod in pure functions: its name, the manifest a cluster is sent, and what a Pod's
 * status (as a kubelet reports it) says about the attempt.
 */
import type { V1Pod } from '@kubernetes/client-node'
import { describe, expect, it } from 'vitest'
import type { Assignment } from '../../src/core/protocol.ts'
import {
  isActive,
  podManifest,
  podName,
  podOutcome,
  podSelector,
} from '../../src/targets/kubernetes/pod.ts'

const JOB = '0193b9a0-7c1e-7d2a-9b7e-3c5f2a1d4e6f'
const ORDER = '0193b9a0-7b00-7000-8000-000000000001'
const target = { name: 'cluster-a', namespace: 'batch' }

function assignment(over: Partial<Assignment> = {}): Assignment {
  return {
    orderId: ORDER,
    jobId: JOB,
    productId: JOB,
    name: 'train',
    attempt: 2,
    target: 'cluster-a',
    op: {
      image: 'registry.example/train:1',
      command: ['python', 'train.py'],
      env: { MODE: 'fast' },
    },
    resources: [],
    timeoutMs: undefined,
    inputs: [],
    ...over,
  }
}

function envOf(pod: V1Pod): Record<string, string | undefined> {
  return Object.fromEntries(pod.spec!.containers[0]!.env!.map((e) => [e.name, e.value]))
}

describe('podName', () => {
  it('is lockstep-<job>-<attempt>, a DNS-1123 label, the same every time', () => {
    expect(podName(JOB, 2)).toBe(`lockstep-${JOB}-2`)
    expect(podName(JOB, 2)).toBe(podName(JOB, 2))
    expect(podName(JOB, 2)).not.toBe(podName(JOB, 3))
    expect(podName(JOB, 123456).length).toBeLessThanOrEqual(63)
  })

  it.each(['Job_1', 'A'.repeat(60), 'j.1'])('hashes an id that is no label (%s)', (id) => {
    const name = podName(id, 1)
    expect(name).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/)
    expect(name.length).toBeLessThanOrEqual(63)
    expect(name).not.toBe(podName(`${id}x`, 1))
  })
})

describe('podManifest', () => {
  it('runs the image once, without credentials, labelled for the target', () => {
    const pod = podManifest(assignment({ timeoutMs: 90_500 }), target, 'ana')
    expect(pod.metadata).toEqual({
      name: `lockstep-${JOB}-2`,
      namespace: 'batch',
      labels: {
        'app.kubernetes.io/managed-by': 'lockstep',
        'lockstep.dev/target': 'cluster-a',
        'lockstep.dev/order': ORDER,
        'lockstep.dev/job': JOB,
        'lockstep.dev/attempt': '2',
        'lockstep.dev/owner': 'ana',
      },
      annotations: { 'lockstep.dev/owner': 'ana', 'lockstep.dev/job-name': 'train' },
    })
    expect(pod.spec).toMatchObject({
      restartPolicy: 'Never',
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      activeDeadlineSeconds: 91,
    })
    expect(pod.spec!.containers).toHaveLength(1)
    expect(pod.spec!.containers[0]).toMatchObject({
      name: 'job',
      image: 'registry.example/train:1',
      command: ['python', 'train.py'],
      terminationMessagePolicy: 'FallbackToLogsOnError',
    })
  })

  it('matches the selector the driver watches with', () => {
    const labels = podManifest(assignment(), target).metadata!.labels!
    for (const term of podSelector('cluster-a').split(',')) {
      const [key, value] = term.split('=')
      expect(labels[key!]).toBe(value)
    }
  })

  it('has no deadline without a timeout, and the image’s own entrypoint without a command', () => {
    const pod = podManifest(assignment({ op: { image: 'busybox' } }), target)
    expect(pod.spec!.activeDeadlineSeconds).toBeUndefined()
    expect(pod.spec!.containers[0]!.command).toBeUndefined()
  })

  it('keeps an owner that is no label value as an annotation only', () => {
    const pod = podManifest(assignment(), target, 'ana@example.org')
    expect(pod.metadata!.labels!['lockstep.dev/owner']).toBeUndefined()
    expect(pod.metadata!.annotations!['lockstep.dev/owner']).toBe('ana@example.org')
    const none = podManifest(assignment(), target)
    expect(none.metadata!.annotations!['lockstep.dev/owner']).toBeUndefined()
  })

  it('gives the op’s env, then the resources, then Lockstep’s variables, which win', () => {
    const pod = podManifest(
      assignment({
        op: {
          image: 'busybox',
          env: { MODE: 'fast', LOCKSTEP_JOB_ID: 'forged', LOCKSTEP_RESOURCE_GPU: 'mine' },
        },
        resources: [
          { key: 'gpu', value: 'a100', unique: true },
          { key: 'zone.name', value: 'eu', unique: false },
        ],
      }),
      target,
    )
    expect(envOf(pod)).toEqual({
      MODE: 'fast',
      LOCKSTEP_RESOURCE_GPU: 'a100',
      LOCKSTEP_RESOURCE_ZONE_NAME: 'eu',
      LOCKSTEP_JOB_ID: JOB,
      LOCKSTEP_ORDER_ID: ORDER,
      LOCKSTEP_JOB_NAME: 'train',
      LOCKSTEP_ATTEMPT: '2',
    })
  })

  it('passes the command and the env as written: $(VAR) is not expanded by Kubernetes', () => {
    const pod = podManifest(
      assignment({
        op: { image: 'busybox', command: ['echo', '$(HOME)', '$5'], env: { A: '$(B)' } },
      }),
      target,
    )
    expect(pod.spec!.containers[0]!.command).toEqual(['echo', '$$(HOME)', '$$5'])
    expect(envOf(pod).A).toBe('$$(B)')
  })

  it('refuses an operation that is not an image', () => {
    expect(() => podManifest(assignment({ op: { exec: ['true'] } }), target)).toThrow(
      'image operations only, not exec',
    )
  })
})

/** A Pod as the API serves it, with the status a kubelet would report. */
function pod(status: V1Pod['status'], over: Partial<V1Pod['metadata']> = {}): V1Pod {
  return {
    metadata: { name: `lockstep-${JOB}-1`, namespace: 'batch', ...over },
    spec: { containers: [{ name: 'job', image: 'busybox:1' }], activeDeadlineSeconds: 60 },
    status,
  }
}

const terminated = (t: Record<string, unknown>) => ({
  containerStatuses: [
    {
      name: 'job',
      image: 'busybox:1',
      imageID: '',
      ready: false,
      restartCount: 0,
      state: { terminated: { exitCode: 0, ...t } },
    },
  ],
})

const waiting = (reason: string, message?: string) => ({
  phase: 'Pending',
  containerStatuses: [
    {
      name: 'job',
      image: 'busybox:1',
      imageID: '',
      ready: false,
      restartCount: 0,
      state: { waiting: { reason, message } },
    },
  ],
})

const NOW = 1_700_000_000_000

describe('podOutcome', () => {
  it.each([
    { name: 'no status yet', status: undefined, state: 'pending' },
    { name: 'Pending', status: { phase: 'Pending' }, state: 'pending' },
    {
      name: 'ContainerCreating',
      status: waiting('ContainerCreating'),
      state: 'pending',
    },
    { name: 'Running', status: { phase: 'Running' }, state: 'running' },
    { name: 'Unknown (node lost)', status: { phase: 'Unknown' }, state: 'running' },
  ])('$name is not over', ({ status, state }) => {
    const got = podOutcome(pod(status), NOW, 300_000)
    expect(got.state).toBe(state)
  })

  it.each([
    {
      name: 'a success with a termination message of artefacts',
      status: {
        phase: 'Succeeded',
        ...terminated({
          reason: 'Completed',
          message: '{"artefacts": ["s3://bucket/model.bin", "https://example.org/r.html"]}',
        }),
      },
      result: {
        ok: true,
        exitCode: 0,
        artefacts: ['s3://bucket/model.bin', 'https://example.org/r.html'],
      },
    },
    {
      name: 'a success with no message',
      status: { phase: 'Succeeded', ...terminated({ reason: 'Completed' }) },
      result: { ok: true, exitCode: 0 },
    },
    {
      name: 'a success whose artefacts do not read',
      status: { phase: 'Succeeded', ...terminated({ message: '{"artefacts": [' }) },
      result: {
        ok: false,
        exitCode: 0,
        reason: 'artefacts',
        message: expect.stringContaining('artefacts are not valid JSON') as unknown,
      },
    },
    {
      name: 'a success with an artefact that is no URL',
      status: { phase: 'Succeeded', ...terminated({ message: '["not a url"]' }) },
      result: {
        ok: false,
        exitCode: 0,
        reason: 'artefacts',
        message: expect.stringContaining('artefact 1 is not a URL') as unknown,
      },
    },
    {
      name: 'exit 3 with a message',
      status: {
        phase: 'Failed',
        ...terminated({ exitCode: 3, reason: 'Error', message: 'no input\n' }),
      },
      result: { ok: false, exitCode: 3, reason: 'exit-code', message: 'no input' },
    },
    {
      name: 'exit 1 without a message',
      status: { phase: 'Failed', ...terminated({ exitCode: 1, reason: 'Error' }) },
      result: { ok: false, exitCode: 1, reason: 'exit-code' },
    },
    {
      name: 'OOMKilled',
      status: { phase: 'Failed', ...terminated({ exitCode: 137, reason: 'OOMKilled' }) },
      result: {
        ok: false,
        exitCode: 137,
        reason: 'oom-killed',
        message: 'the container ran out of memory and was killed',
      },
    },
    {
      name: 'the deadline',
      status: {
        phase: 'Failed',
        reason: 'DeadlineExceeded',
        message: 'Pod was active on the node longer than the specified deadline',
        ...terminated({ exitCode: 137, reason: 'Error' }),
      },
      result: {
        ok: false,
        reason: 'deadline-exceeded',
        message: 'Pod was active on the node longer than the specified deadline',
      },
    },
    {
      name: 'the deadline, without words',
      status: { phase: 'Failed', reason: 'DeadlineExceeded' },
      result: {
        ok: false,
        reason: 'deadline-exceeded',
        message: 'ran longer than its deadline of 60 s',
      },
    },
    {
      name: 'an eviction',
      status: {
        phase: 'Failed',
        reason: 'Evicted',
        message: 'The node was low on resource: memory.',
      },
      result: { ok: false, reason: 'evicted', message: 'The node was low on resource: memory.' },
    },
    {
      name: 'a Pod that failed before its container ran',
      status: { phase: 'Failed', reason: 'NodeAffinity', message: 'node(s) didn’t match' },
      result: { ok: false, reason: 'pod-failed', message: 'NodeAffinity: node(s) didn’t match' },
    },
    {
      name: 'an invalid image name, at once',
      status: waiting('InvalidImageName', 'couldn\'t parse image name "UPPER:case"'),
      result: {
        ok: false,
        reason: 'image-pull',
        message: 'cannot pull busybox:1: InvalidImageName: couldn\'t parse image name "UPPER:case"',
      },
    },
  ])('$name', ({ status, result }) => {
    expect(podOutcome(pod(status), NOW, 300_000)).toEqual({ state: 'ended', result })
  })

  it.each(['ImagePullBackOff', 'ErrImagePull'])(
    '%s fails the attempt only once it lasted the pull timeout',
    (reason) => {
      const first = podOutcome(pod(waiting(reason, 'not found')), NOW, 60_000)
      expect(first).toEqual({ state: 'pending', pullingSince: NOW })
      const later = podOutcome(pod(waiting(reason)), NOW + 59_999, 60_000, NOW)
      expect(later).toEqual({ state: 'pending', pullingSince: NOW })
      const over = podOutcome(pod(waiting(reason, 'not found')), NOW + 60_000, 60_000, NOW)
      expect(over).toEqual({
        state: 'ended',
        result: {
          ok: false,
          reason: 'image-pull',
          message: `cannot pull busybox:1: ${reason}: not found (for 60 s)`,
        },
      })
    },
  )

  it('forgets pull trouble once the pull goes on', () => {
    expect(podOutcome(pod(waiting('ContainerCreating')), NOW, 60_000, NOW - 1000)).toEqual({
      state: 'pending',
    })
  })

  it('fails a Pod being deleted before it ended as pod-deleted; one that succeeded stays so', () => {
    const deleting = { deletionTimestamp: new Date(NOW) }
    expect(podOutcome(pod({ phase: 'Running' }, deleting), NOW, 1)).toEqual({
      state: 'ended',
      result: {
        ok: false,
        reason: 'pod-deleted',
        message: `the Pod lockstep-${JOB}-1 was deleted before it ended`,
      },
    })
    const done = pod({ phase: 'Succeeded', ...terminated({}) }, deleting)
    expect(podOutcome(done, NOW, 1)).toEqual({ state: 'ended', result: { ok: true, exitCode: 0 } })
  })

  it('clips a long message', () => {
    const got = podOutcome(
      pod({ phase: 'Failed', ...terminated({ exitCode: 2, message: 'x'.repeat(20_000) }) }),
      NOW,
      1,
    )
    expect(got.state === 'ended' && got.result.message!.length).toBeLessThanOrEqual(4001)
  })
})

describe('isActive', () => {
  it.each([
    { phase: 'Pending', deleting: false, active: true },
    { phase: 'Running', deleting: false, active: true },
    { phase: 'Unknown', deleting: false, active: true },
    { phase: 'Succeeded', deleting: false, active: false },
    { phase: 'Failed', deleting: false, active: false },
    { phase: 'Failed', deleting: true, active: true },
  ])('$phase (being deleted: $deleting) holds a slot: $active', ({ phase, deleting, active }) => {
    const p = pod({ phase }, deleting ? { deletionTimestamp: new Date(NOW) } : {})
    expect(isActive(p)).toBe(active)
  })
})
