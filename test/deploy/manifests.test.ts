/**
 * The manifests in `deploy/` parse, and say what the docs promise: the scheduler's
 * ServiceAccount may touch Pods in the jobs' namespace and nothing else, one replica owns the
 * store, and the targets file it is given is one the scheduler reads.
 */
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { parse, parseAllDocuments } from 'yaml'
import { compileTargetsFile } from '../../src/targets/kubernetes/targets-file.ts'

interface Manifest {
  apiVersion: string
  kind: string
  metadata: { name: string; namespace?: string }
  [key: string]: unknown
}

function manifests(path: string): Manifest[] {
  return parseAllDocuments(readFileSync(path, 'utf8')).map((doc) => {
    expect(doc.errors, `${path}: ${doc.errors.join('; ')}`).toEqual([])
    return doc.toJS() as Manifest
  })
}

const all = manifests('deploy/lockstep.yaml')
const one = <T>(kind: string): Manifest & T => {
  const found = all.filter((m) => m.kind === kind)
  expect(found, kind).toHaveLength(1)
  return found[0] as Manifest & T
}

describe('deploy/lockstep.yaml', () => {
  it('is a list of named, namespaced objects', () => {
    expect(all.map((m) => m.kind).sort()).toEqual([
      'ConfigMap',
      'Deployment',
      'PersistentVolumeClaim',
      'Role',
      'RoleBinding',
      'Service',
      'ServiceAccount',
    ])
    for (const m of all) {
      expect(m.apiVersion, m.kind).toMatch(/^(v1|apps\/v1|rbac\.authorization\.k8s\.io\/v1)$/)
      expect(m.metadata.name, m.kind).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/)
      expect(m.metadata.namespace, m.kind).toMatch(/^(lockstep|batch)$/)
    }
  })

  it('lets the scheduler touch Pods in the jobs’ namespace, and nothing else', () => {
    const role = one<{ rules: { apiGroups: string[]; resources: string[]; verbs: string[] }[] }>(
      'Role',
    )
    expect(role.rules).toHaveLength(1)
    expect(role.rules[0]!.apiGroups).toEqual([''])
    expect(role.rules[0]!.resources).toEqual(['pods'])
    for (const verb of role.rules[0]!.verbs) {
      expect(['create', 'get', 'list', 'watch', 'delete']).toContain(verb)
    }
    const binding = one<{
      subjects: { kind: string; name: string; namespace: string }[]
      roleRef: { kind: string; name: string }
    }>('RoleBinding')
    const account = one('ServiceAccount')
    expect(binding.metadata.namespace).toBe(role.metadata.namespace)
    expect(binding.roleRef).toMatchObject({ kind: 'Role', name: role.metadata.name })
    expect(binding.subjects).toEqual([
      {
        kind: 'ServiceAccount',
        name: account.metadata.name,
        namespace: account.metadata.namespace,
      },
    ])
  })

  it('runs one scheduler on its ServiceAccount, with its store, tokens and targets mounted', () => {
    interface Pod {
      serviceAccountName: string
      containers: {
        args: string[]
        volumeMounts: { name: string; mountPath: string }[]
        readinessProbe: { httpGet: { path: string } }
      }[]
      volumes: {
        name: string
        configMap?: { name: string }
        secret?: { secretName: string }
        persistentVolumeClaim?: { claimName: string }
      }[]
    }
    const deployment = one<{
      spec: { replicas: number; strategy: { type: string }; template: { spec: Pod } }
    }>('Deployment')
    expect(deployment.spec.replicas).toBe(1)
    expect(deployment.spec.strategy.type).toBe('Recreate')
    const pod = deployment.spec.template.spec
    expect(pod.serviceAccountName).toBe(one('ServiceAccount').metadata.name)
    const [container] = pod.containers
    const arg = (name: string) =>
      container!.args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3)
    const mountOf = (path: string) =>
      container!.volumeMounts.find((m) => path.startsWith(`${m.mountPath}/`))
    const volumeOf = (path: string) => pod.volumes.find((v) => v.name === mountOf(path)?.name)

    expect(volumeOf(arg('data-dir')! + '/x')?.persistentVolumeClaim?.claimName).toBe(
      one('PersistentVolumeClaim').metadata.name,
    )
    expect(volumeOf(arg('tokens-file')!)?.secret?.secretName).toBe('lockstep-tokens')
    const targets = arg('targets')!
    const config = one<{ data: Record<string, string> }>('ConfigMap')
    expect(volumeOf(targets)?.configMap?.name).toBe(config.metadata.name)
    const file = targets.split('/').pop()!
    expect(Object.keys(config.data)).toContain(file)
    // The scheduler reads it: the cluster it runs in, in the namespace its Role covers.
    const read = compileTargetsFile(parse(config.data[file]!), file)
    expect(read.targets).toEqual([
      expect.objectContaining({ kind: 'kubernetes', namespace: one('Role').metadata.namespace }),
    ])
    expect(read.targets[0]!.kubeconfig).toBeUndefined()
    expect(container!.readinessProbe.httpGet.path).toBe('/healthz')
  })
})
