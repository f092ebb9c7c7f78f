/**
 * `kube`: 2,000 `image` jobs over two Kubernetes targets of availability 100 each, against the
 * test Kubernetes API server (`test/kube/api-server.ts`), whose kubelet runs each Pod as it is
 * created. A real `lockstep server` process drives both clusters through the real client.
 *
 * Two runs: Pods that end as they start (jobs_per_s: how fast the scheduler drives its
 * clusters), then Pods that last 500 ms, so that availability is what limits the clusters: the
 * most non-terminal Pods seen at once on each must reach its availability and never pass it.
 */
import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { LockstepClient } from '../src/client/client.ts'
import { KubeApiServer } from '../test/kube/api-server.ts'
import { startServer, stopProcess, untilSucceeded } from './processes.ts'
import { report } from './report.ts'

const JOBS = Number(process.env.KUBE_JOBS ?? 2_000)
const AVAILABILITY = 100
/** How long each Pod of the second run lasts: long enough for both clusters to fill up. */
const HELD_MS = 500
const TOKEN = 'bench-admin-token'
const CLUSTERS = ['cluster-a', 'cluster-b']

export async function runKube(): Promise<void> {
  const instant = await run(0)
  report({ bench: 'kube', metric: 'jobs_per_s', value: Math.round(JOBS / instant.seconds) })
  report({ bench: 'kube', metric: 'pods_created', value: instant.created, target: { max: JOBS } })
  const held = await run(HELD_MS)
  CLUSTERS.forEach((name, i) => {
    report({
      bench: 'kube',
      metric: `max_pods_${name}`,
      value: held.most[i]!,
      target: { min: AVAILABILITY, max: AVAILABILITY },
    })
  })
}

/** One run of JOBS jobs whose Pods last `runMs`. */
async function run(runMs: number): Promise<{ seconds: number; created: number; most: number[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'lockstep-kube-bench-'))
  const kube = await KubeApiServer.start({
    kubelet: (pod, k) => {
      const { namespace, name } = pod.metadata
      setImmediate(() => k.run(namespace, name))
      setTimeout(() => k.succeed(namespace, name), runMs)
    },
  })
  const targets = CLUSTERS.map(
    (name) =>
      `  - name: ${name}\n    kind: kubernetes\n    kubeconfig: ${kube.kubeconfig(dir, { namespace: name, file: `${name}.yaml` })}\n    availability: ${AVAILABILITY}\n`,
  ).join('')
  writeFileSync(join(dir, 'targets.yaml'), `targets:\n${targets}`)
  let server: ChildProcess | undefined
  try {
    // KUBE_PROFILE=DIR writes a CPU profile of the scheduler there.
    const started = await startServer(
      [
        '--port',
        '0',
        '--tokens',
        `admin:bench:${TOKEN}`,
        '--data-dir',
        join(dir, 'scheduler'),
        '--targets',
        join(dir, 'targets.yaml'),
      ],
      { LOCKSTEP_DATABASE_URL: '' },
      process.env.KUBE_PROFILE,
    )
    server = started.child
    const url = started.url
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
    await untilSucceeded(
      c,
      orders.map((o) => o.orderId),
      20,
    )
    const seconds = (performance.now() - begin) / 1000
    const created = kube.requests.filter((r) => r.method === 'POST').length
    const most = CLUSTERS.map((name) => kube.maxNonTerminal(name))
    process.stderr.write(
      `kube: ${JOBS} jobs of ${runMs} ms in ${seconds.toFixed(2)} s over ${CLUSTERS.length} clusters; ${created} Pods created, at most ${most.join(' and ')} at once\n`,
    )
    return { seconds, created, most }
  } finally {
    if (server !== undefined) await stopProcess(server)
    await kube.close()
    rmSync(dir, { recursive: true, force: true })
  }
}
