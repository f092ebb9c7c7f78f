/**
 * `kube`: 2,000 `image` jobs over two Kubernetes targets of availability 100 each, against the
 * test Kubernetes API server (`test/kube/api-server.ts`), whose kubelet completes each Pod as it
 * is created. A real `lockstep server` process drives both through the real client. Prints
 * jobs_per_s, and the largest count of non-terminal Pods seen on each cluster at once, which
 * must equal its availability and never exceed it.
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { LockstepClient } from '../src/client/client.ts'
import { KubeApiServer } from '../test/kube/api-server.ts'
import { report } from './report.ts'

const JOBS = Number(process.env.KUBE_JOBS ?? 2_000)
const AVAILABILITY = 100
const TOKEN = 'bench-admin-token'
const CLUSTERS = ['cluster-a', 'cluster-b']

export async function runKube(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'lockstep-kube-bench-'))
  // The kubelet: each Pod runs and succeeds on the next turn after it is created.
  const kube = await KubeApiServer.start({
    kubelet: (pod, k) =>
      setImmediate(() => {
        const { namespace, name } = pod.metadata
        k.run(namespace, name)
        k.succeed(namespace, name)
      }),
  })
  const targets = CLUSTERS.map(
    (name) =>
      `  - name: ${name}\n    kind: kubernetes\n    kubeconfig: ${kube.kubeconfig(dir, { namespace: name, file: `${name}.yaml` })}\n    availability: ${AVAILABILITY}\n`,
  ).join('')
  writeFileSync(join(dir, 'targets.yaml'), `targets:\n${targets}`)
  const server = spawn(
    process.execPath,
    [
      'bin/lockstep.js',
      'server',
      '--port',
      '0',
      '--tokens',
      `admin:bench:${TOKEN}`,
      '--data-dir',
      join(dir, 'scheduler'),
      '--targets',
      join(dir, 'targets.yaml'),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, LOCKSTEP_DATABASE_URL: '' } },
  )
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let out = ''
      server.stdout.on('data', (d: Buffer) => {
        out += d.toString()
        const found = /listening on (\S+)/.exec(out)
        if (found !== null) resolve(found[1]!)
      })
      server.on('exit', (code) => reject(new Error(`lockstep server exited ${code}`)))
    })
    const c = new LockstepClient({ url, token: TOKEN })
    const begin = performance.now()
    const packets = Math.ceil(JOBS / 1000)
    const orders = await Promise.all(
      Array.from({ length: packets }, (_, p) =>
        c.submit({
          packet: {
            name: `kube-${p}`,
            jobs: Array.from({ length: Math.min(1000, JOBS - p * 1000) }, (_, i) => ({
              name: `j${i}`,
              op: { image: 'busybox:1.36', command: ['true'] },
            })),
          },
        }),
      ),
    )
    for (const o of orders) {
      for (;;) {
        const { fulfilment } = await c.order(o.orderId)
        if (fulfilment.state !== 'running') {
          if (fulfilment.state !== 'succeeded')
            throw new Error(`order ${o.orderId} ${fulfilment.state}`)
          break
        }
        await new Promise((r) => setTimeout(r, 20))
      }
    }
    const seconds = (performance.now() - begin) / 1000
    const created = kube.requests.filter((r) => r.method === 'POST').length
    process.stderr.write(
      `kube: ${JOBS} jobs in ${seconds.toFixed(2)} s over ${CLUSTERS.length} clusters; ${created} Pods created\n`,
    )
    report({ bench: 'kube', metric: 'jobs_per_s', value: Math.round(JOBS / seconds) })
    report({ bench: 'kube', metric: 'pods_created', value: created, target: { max: JOBS } })
    for (const name of CLUSTERS) {
      report({
        bench: 'kube',
        metric: `max_pods_${name}`,
        value: kube.maxNonTerminal(name),
        target: { max: AVAILABILITY },
      })
    }
  } finally {
    const gone = new Promise((r) => server.once('exit', r))
    server.kill('SIGTERM')
    await Promise.race([gone, new Promise((r) => setTimeout(r, 5000))])
    server.kill('SIGKILL')
    await kube.close()
    rmSync(dir, { recursive: true, force: true })
  }
}
