/**
 * The targets file: a good one reads with its defaults and its kubeconfig paths resolved next to
 * it; a bad one is refused whole, with the file, the field's path and the problem in the error.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  TargetsFileError,
  compileTargetsFile,
  readTargetsFile,
} from '../../src/targets/kubernetes/targets-file.ts'

let dir: string

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'lockstep-targets-'))
})

afterEach(() => {
  rmSync(dir, { recursive: true, force: true })
})

function write(text: string): string {
  const file = join(dir, 'targets.yaml')
  writeFileSync(file, text)
  return file
}

describe('a targets file', () => {
  it('reads every entry, with defaults, the kubeconfig next to the file', () => {
    const file = write(
      [
        'targets:',
        '  - name: cluster-a',
        '    kind: kubernetes',
        '    kubeconfig: ./kube/cluster-a.yaml',
        '    context: ops',
        '    namespace: batch',
        '    availability: 20',
        '    labels: { zone: eu }',
        '    imagePullTimeoutSeconds: 30',
        '  - name: cluster_b.2',
        '    kind: kubernetes',
        '    kubeconfig: /etc/kube/b.yaml',
        '    availability: 0',
      ].join('\n'),
    )
    expect(readTargetsFile(file)).toEqual({
      path: file,
      targets: [
        {
          kind: 'kubernetes',
          name: 'cluster-a',
          kubeconfig: join(dir, 'kube', 'cluster-a.yaml'),
          context: 'ops',
          namespace: 'batch',
          availability: 20,
          labels: { zone: 'eu' },
          imagePullTimeoutMs: 30_000,
        },
        {
          kind: 'kubernetes',
          name: 'cluster_b.2',
          kubeconfig: '/etc/kube/b.yaml',
          availability: 0,
          labels: {},
          imagePullTimeoutMs: 300_000,
        },
      ],
    })
  })

  it('reads JSON too, and an empty list', () => {
    expect(readTargetsFile(write('{"targets": []}')).targets).toEqual([])
  })

  const good = { name: 'a', kind: 'kubernetes', kubeconfig: 'k.yaml', availability: 1 }

  it.each([
    { name: 'no targets', data: {}, error: 'targets: is required' },
    { name: 'a list at the top', data: [good], error: 'expected a mapping with a list of targets' },
    {
      name: 'a missing availability',
      data: { targets: [{ ...good, availability: undefined }] },
      error: 'targets[0].availability: is required',
    },
    {
      name: 'a negative availability',
      data: { targets: [good, { ...good, name: 'b', availability: -1 }] },
      error: 'targets[1].availability: must be 0 or more',
    },
    {
      name: 'a fractional availability',
      data: { targets: [{ ...good, availability: 2.5 }] },
      error: 'targets[0].availability: expected a whole number',
    },
    {
      name: 'an availability in quotes',
      data: { targets: [{ ...good, availability: '3' }] },
      error: 'targets[0].availability: expected number, received string',
    },
    {
      name: 'another kind',
      data: { targets: [{ ...good, kind: 'nomad' }] },
      error: 'targets[0].kind: must be kubernetes',
    },
    {
      name: 'no kind',
      data: { targets: [{ ...good, kind: undefined }] },
      error: 'targets[0].kind: must be kubernetes',
    },
    {
      name: 'a name that is no label value',
      data: { targets: [{ ...good, name: 'cluster a' }] },
      error: 'targets[0].name: must be 1–63 letters, digits, or - _ .',
    },
    {
      name: 'a name of 64 characters',
      data: { targets: [{ ...good, name: 'a'.repeat(64) }] },
      error: 'targets[0].name: must be 1–63',
    },
    {
      name: 'a name ending in a dash',
      data: { targets: [{ ...good, name: 'cluster-' }] },
      error: 'targets[0].name: must be 1–63',
    },
    {
      name: 'a name used twice',
      data: { targets: [good, { ...good, kubeconfig: 'other.yaml' }] },
      error: "targets[1].name: 'a' is the name of targets[0] too",
    },
    {
      name: 'an unknown field',
      data: { targets: [{ ...good, slots: 3 }] },
      error: 'targets[0].slots: unknown field',
    },
    {
      name: 'a namespace in capitals',
      data: { targets: [{ ...good, namespace: 'Batch' }] },
      error: 'targets[0].namespace: must be a Kubernetes namespace',
    },
    {
      name: 'a pull timeout of 0',
      data: { targets: [{ ...good, imagePullTimeoutSeconds: 0 }] },
      error: 'targets[0].imagePullTimeoutSeconds:',
    },
    {
      name: 'a label that is no string',
      data: { targets: [{ ...good, labels: { zone: 1 } }] },
      error: 'targets[0].labels.zone:',
    },
  ])('refuses $name, naming the file and the field', ({ data, error }) => {
    let thrown: unknown
    try {
      compileTargetsFile(data, 'conf/targets.yaml')
    } catch (e) {
      thrown = e
    }
    expect(thrown).toBeInstanceOf(TargetsFileError)
    const e = thrown as TargetsFileError
    expect(e.file).toBe('conf/targets.yaml')
    expect(e.code).toBe('VALIDATION_FAILED')
    expect(e.message).toContain(`conf/targets.yaml: ${error}`)
  })

  it('names the line of a syntax error', () => {
    const file = write('targets:\n  - name: a\n    kind: [\n')
    expect(() => readTargetsFile(file)).toThrow(new RegExp(`^${file}:4:1: `))
  })

  it('names a file it cannot read', () => {
    const file = join(dir, 'missing.yaml')
    expect(() => readTargetsFile(file)).toThrow(`${file}: cannot read the targets file: ENOENT`)
  })
})
