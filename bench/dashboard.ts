/**
 * `dashboard`: how long the dashboard takes to draw the graph of an order of 5,000 jobs (100
 * layers of 50, each job locked to two of the layer before), in Debian's chromium against a real
 * `lockstep server`. `graph_ms_5000` is the page's own figure — layout (layered: above dagre's
 * 500 jobs) and the SVG's first render, from the answer's arrival to the effect after commit;
 * `open_ms_5000` is the whole open, from navigation to every node in the page, API calls
 * included. Medians of five opens.
 */
import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { chromium } from 'playwright-core'
import { LockstepClient } from '../src/client/client.ts'
import { chromiumOptions } from './chromium.ts'
import { startServer, stopProcess } from './processes.ts'
import { median, report } from './report.ts'

const LAYERS = 100
const WIDTH = 50

/** A packet of LAYERS × WIDTH jobs, pinned to a target that never comes: they stay put. */
function bigPacket() {
  const name = (layer: number, i: number) => `j${layer}-${i}`
  return {
    name: 'dashboard-bench',
    jobs: Array.from({ length: LAYERS * WIDTH }, (_, n) => {
      const layer = Math.floor(n / WIDTH)
      const i = n % WIDTH
      return {
        name: name(layer, i),
        op: { builtin: 'noop' },
        target: 'nowhere',
        ...(layer === 0
          ? {}
          : { after: [name(layer - 1, i), name(layer - 1, (i * 7 + 3) % WIDTH)] }),
      }
    }),
  }
}

export async function runDashboard(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'lockstep-dashboard-bench-'))
  let child: ChildProcess | undefined
  try {
    const server = await startServer(['--port', '0', '--data-dir', dir], {
      LOCKSTEP_DATABASE_URL: join(dir, 'lockstep.db'),
    })
    child = server.child
    const c = new LockstepClient({ url: server.url })
    const order = await c.submit({ packet: bigPacket() })
    const browser = await chromium.launch(chromiumOptions)
    try {
      const page = await browser.newPage({ viewport: { width: 1440, height: 900 } })
      const graph: number[] = []
      const open: number[] = []
      let engine = ''
      for (let run = 0; run < 5; run++) {
        await page.goto('about:blank')
        const start = performance.now()
        await page.goto(`${server.url}/#/orders/${order.orderId}`)
        const frame = page.locator('.graph-frame[data-render-ms]')
        await frame.waitFor({ timeout: 60_000 })
        open.push(performance.now() - start)
        graph.push(Number(await frame.getAttribute('data-render-ms')))
        engine = (await page.locator('svg.graph').getAttribute('data-engine')) ?? ''
        const nodes = await page.locator('svg.graph a.node').count()
        if (nodes !== LAYERS * WIDTH) throw new Error(`the graph shows ${nodes} jobs`)
      }
      process.stderr.write(
        `dashboard: ${LAYERS * WIDTH} jobs (${engine}); graph ms ${graph.map((t) => t.toFixed(0)).join(' ')}; open ms ${open.map((t) => t.toFixed(0)).join(' ')}\n`,
      )
      report({ bench: 'dashboard', metric: 'graph_ms_5000', value: Math.round(median(graph)) })
      report({ bench: 'dashboard', metric: 'open_ms_5000', value: Math.round(median(open)) })
    } finally {
      await browser.close()
    }
  } finally {
    if (child !== undefined) await stopProcess(child)
    rmSync(dir, { recursive: true, force: true })
  }
}
