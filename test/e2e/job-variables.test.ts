/**
 * What a job is told and what it tells back, end to end with a real `lockstep server` and a real
 * `lockstep worker`: an `exec` job sees each resource it uses as `LOCKSTEP_RESOURCE_<KEY>`, and
 * the artefacts it lists in `$LOCKSTEP_ARTEFACTS` travel in the heartbeat, are stored with its
 * attempt and shown by the API and the CLI; a list that does not parse fails the job.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { checkLeaks } from '../leaks.ts'
import { sqliteBackend } from '../store/backends.ts'
import type { Backend } from '../store/backends.ts'
import { main } from '../../src/cli/main.ts'
import { Cluster, sh, WORKBENCH } from './cluster.ts'

const opened = checkLeaks()

const REPORT = 'https://example.com/runs/7/report.html'
const MODEL = 's3://bucket/runs/7/model.pt'

let backend: Backend
let cluster: Cluster

beforeEach(() => {
  backend = sqliteBackend()
  cluster = new Cluster({ databaseUrl: backend.url, opened })
})

afterEach(async () => {
  await cluster.stopAll()
  await backend.destroy()
})

const packet = {
  name: 'train',
  resources: [
    { key: 'gpu.model', value: 'a100' },
    { key: 'licence', value: 'seat-3', unique: true },
  ],
  jobs: [
    {
      name: 'train',
      op: sh(`env; printf '%s\\n' ${REPORT} ${MODEL} > "$LOCKSTEP_ARTEFACTS"`),
      uses: ['gpu.model', 'licence'],
    },
    {
      name: 'plain',
      op: sh('env'),
    },
    {
      name: 'bad',
      op: sh(`echo 'see the wiki' > "$LOCKSTEP_ARTEFACTS"`),
      failure: { onExhausted: 'continue' as const },
    },
  ],
}

describe('job variables on a real worker', () => {
  it('shows an exec job its resources and keeps the artefacts it reports', async () => {
    await cluster.server()
    await cluster.worker('w1', ['--slots', '3'])
    const c = cluster.client()
    const order = await c.submit({ packet })
    expect((await cluster.finished(order.orderId)).counts).toMatchObject({
      succeeded: 2,
      failed: 1,
    })
    const env = readFileSync(join(await cluster.product(order.orderId, 'train'), 'stdout'), 'utf8')
    expect(env).toMatch(/^LOCKSTEP_RESOURCE_GPU_MODEL=a100$/m)
    expect(env).toMatch(/^LOCKSTEP_RESOURCE_LICENCE=seat-3$/m)
    expect(env).toMatch(/^LOCKSTEP_ARTEFACTS=.*\/artefacts$/m)
    // A job that uses no resource is told of none.
    const plain = readFileSync(
      join(await cluster.product(order.orderId, 'plain'), 'stdout'),
      'utf8',
    )
    expect(plain).not.toMatch(/^LOCKSTEP_RESOURCE_/m)

    const byName = new Map((await c.jobs(order.orderId)).map((j) => [j.name, j]))
    const train = await c.job(byName.get('train')!.id)
    expect(train.attempts).toMatchObject([{ state: 'succeeded', artefacts: [REPORT, MODEL] }])
    const bad = await c.job(byName.get('bad')!.id)
    expect(bad.job.state).toBe('failed')
    expect(bad.attempts).toMatchObject([{ state: 'failed', reason: 'artefacts' }])
    expect(bad.attempts[0]!.message).toMatch(/^artefact 1 is not a URL/)
    expect(bad.job.reason).toMatch(/^artefacts: artefact 1 is not a URL/)

    // The CLI prints them: under the job's line in `status`, with the attempt in `logs`.
    const lines: string[] = []
    const cli = (...args: string[]) =>
      main([...args, '--server', cluster.url, '--token', WORKBENCH], (l) => lines.push(l))
    expect(await cli('status', order.orderId)).toBe(0)
    const at = lines.findIndex((l) => /^ {2}train +succeeded/.test(l))
    expect(lines.slice(at + 1, at + 3)).toEqual([`    artefact ${REPORT}`, `    artefact ${MODEL}`])
    expect(lines.filter((l) => l.startsWith('    artefact '))).toHaveLength(2)
    lines.length = 0
    expect(await cli('logs', train.job.id)).toBe(0)
    expect(lines.slice(0, 3)).toEqual([
      'attempt 1 on w1: succeeded (exit code 0)',
      `  artefact ${REPORT}`,
      `  artefact ${MODEL}`,
    ])
    lines.length = 0
    expect(await cli('logs', bad.job.id)).toBe(0)
    expect(lines[0]).toBe('attempt 1 on w1: failed (artefacts)')
    expect(lines[1]).toMatch(/^ {2}artefact 1 is not a URL/)
  }, 60_000)
})
