/**
 * `npm run screenshots`: the dashboard's views as 1440×900 PNGs in docs/screenshots/, taken from a
 * real `lockstep up --examples` (a scheduler and three workers in one process, every example
 * run) plus a few orders that show what the examples do not: a job waiting for a target that
 * does not exist, and a packet still running.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium } from 'playwright-core'
import { LockstepClient } from '../src/client/client.ts'
import { chromiumOptions } from './chromium.ts'
import { startLockstep, stopProcess } from './processes.ts'

const OUT = 'docs/screenshots'
const sh = (script: string) => ({ exec: ['sh', '-c', script] })

const dir = mkdtempSync(join(tmpdir(), 'lockstep-screenshots-'))
const { child, line } = await startLockstep(['up', '--port', '0', '--examples'], {
  LOCKSTEP_DATA_DIR: dir,
})
try {
  const url = /running at (\S+)/.exec(line)![1]!
  const { token } = JSON.parse(readFileSync(join(dir, 'cli.json'), 'utf8')) as { token: string }
  const c = new LockstepClient({ url, token })
  // The examples run one after another; wait until they have all been ordered and ended.
  for (let i = 0; i < 600; i++) {
    const orders = await c.orders()
    if (orders.length >= 4 && orders.every((o) => o.state !== 'running')) break
    await new Promise((r) => setTimeout(r, 100))
  }
  const pinned = await c.submit(
    {
      packet: {
        name: 'nightly-report',
        jobs: [
          { name: 'extract', op: sh('true') },
          { name: 'render', op: sh('true'), after: ['extract'], target: 'gpu-box' },
          { name: 'publish', op: sh('true'), after: ['render'] },
        ],
      },
    },
    { priority: 80 },
  )
  const build = await c.submit({
    packet: {
      name: 'release-build',
      jobs: [
        ...['parser', 'lexer', 'codegen', 'runtime', 'stdlib', 'cli'].map((n) => ({
          name: `compile-${n}`,
          op: sh('sleep 0.2'),
        })),
        {
          name: 'link',
          op: sh('sleep 60'),
          after: ['compile-parser', 'compile-lexer', 'compile-codegen', 'compile-runtime'],
        },
        { name: 'package-cli', op: sh('sleep 60'), after: ['compile-stdlib', 'compile-cli'] },
        { name: 'test-unit', op: sh('true'), after: ['link'] },
        { name: 'test-e2e', op: sh('true'), after: ['link', 'package-cli'] },
        { name: 'publish', op: sh('true'), after: ['test-unit', 'test-e2e'] },
      ],
    },
  })
  const dropped = await c.submit(
    { packet: { name: 'backfill-2024', jobs: [{ name: 'scan', op: sh('sleep 30') }] } },
    { priority: 20 },
  )
  await new Promise((r) => setTimeout(r, 1500))
  await c.cancelOrder(dropped.orderId)
  const waiting = (await c.jobs(pinned.orderId)).find((j) => j.name === 'render')!
  // federated-logreg: five iterations of a step per clinic, the largest example.
  const logreg = (await c.orders()).find((o) => o.total >= 20)

  // The at-a-glance trend needs two points of the stats history (one each 10 s).
  for (let i = 0; i < 300; i++) {
    const points = await c.request<unknown[]>('GET', '/v1/stats/history')
    if (points.length >= 2) break
    await new Promise((r) => setTimeout(r, 100))
  }

  mkdirSync(OUT, { recursive: true })
  const browser = await chromium.launch(chromiumOptions)
  try {
    const page = await browser.newPage({ viewport: { width: 1440, height: 900 } })
    await page.goto(`${url}/#token=${token}`)
    await page.locator('header.top nav').waitFor()
    const shoot = async (hash: string, ready: string, name: string) => {
      await page.goto(`${url}/#${hash}`)
      await page.locator(ready).first().waitFor()
      await new Promise((r) => setTimeout(r, 600))
      await page.screenshot({ path: join(OUT, `${name}.png`) })
      process.stderr.write(`${join(OUT, `${name}.png`)}\n`)
    }
    await shoot('/orders', 'table.orders tbody tr', 'orders')
    await shoot(`/orders/${build.orderId}`, 'svg.graph a.node', 'order-graph')
    if (logreg !== undefined) {
      await shoot(`/orders/${logreg.orderId}`, 'svg.graph a.node', 'artifact-graph')
    }
    await shoot(`/jobs/${waiting.id}`, '.wait', 'job')
    await shoot('/targets', 'table.targets tbody tr', 'targets')
  } finally {
    await browser.close()
  }
} finally {
  await stopProcess(child)
  rmSync(dir, { recursive: true, force: true })
}
