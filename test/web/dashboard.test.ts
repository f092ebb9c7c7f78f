/**
 * The dashboard in a real browser (Debian's chromium, driven by playwright-core) against a real
 * `lockstep server` and `lockstep worker`: sign in with a token, watch a packet's jobs turn green
 * in the graph without a reload, read why a job waits, cancel an order, and see that another
 * owner's token shows none of it. Every page runs under the server's CSP and must log no error.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { chromium } from 'playwright-core'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { LockstepClient } from '../../src/client/client.ts'
import { checkLeaks } from '../leaks.ts'
import { sqliteBackend } from '../store/backends.ts'
import type { Backend } from '../store/backends.ts'
import { Cluster, WORKER, sh } from '../e2e/cluster.ts'
import { chromiumOptions } from '../../bench/chromium.ts'

const ANA = 'ana-dashboard-token'
const BOB = 'bob-dashboard-token'
const TOKENS = `workbench:ana:${ANA},workbench:bob:${BOB},worker:*:${WORKER}`

checkLeaks()
let backend: Backend
let cluster: Cluster
let browser: Browser
let context: BrowserContext
let page: Page
let errors: string[]

beforeAll(async () => {
  backend = sqliteBackend()
  cluster = new Cluster({ databaseUrl: backend.url, tokens: TOKENS })
  await cluster.server()
  await cluster.worker('w1', ['--slots', '4'])
  browser = await chromium.launch(chromiumOptions)
}, 30_000)

afterAll(async () => {
  await browser?.close()
  await cluster?.stopAll()
  await backend?.destroy()
})

beforeEach(async () => {
  context = await browser.newContext({ viewport: { width: 1280, height: 800 } })
  page = await context.newPage()
  errors = []
  page.on('console', (m) => {
    // The API's refusals are answers the page expects and shows (the probe for a token, a
    // workbench's refused stream of every order, another owner's order); Chromium logs each
    // failed load anyway. A dashboard file that fails to load is still an error.
    const api = new URL(m.location().url || cluster.url).pathname.startsWith('/v1/')
    if (api && /^Failed to load resource: .* (401|403|404)/.test(m.text())) return
    if (m.type() === 'error' || m.type() === 'warning') errors.push(m.text())
  })
  page.on('pageerror', (e) => errors.push(e.message))
})

afterEach(async () => {
  await context.close()
  expect(browser.contexts(), 'browser contexts left open').toHaveLength(0)
  expect(errors, 'console errors and CSP violations').toEqual([])
})

const ana = () => new LockstepClient({ url: cluster.url, token: ANA })

/** Opens the dashboard and signs in with `token`. */
async function signIn(token: string): Promise<void> {
  const res = await page.goto(`${cluster.url}/`)
  const csp = res?.headers()['content-security-policy'] ?? ''
  expect(csp).toMatch(/script-src 'self' 'sha256-[A-Za-z0-9+/=]+'; style-src 'self'/)
  await page.locator('input[name=token]').fill(token)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.locator('header.top nav').waitFor()
}

/** The states of the graph's jobs, by job name. */
async function graphStates(): Promise<Record<string, string | null>> {
  const out: Record<string, string | null> = {}
  for (const node of await page.locator('svg.graph a.node').all()) {
    out[(await node.getAttribute('data-name'))!] = await node.getAttribute('data-state')
  }
  return out
}

describe('the dashboard', () => {
  it('signs in with a token and colours a running packet’s jobs live, without a reload', async () => {
    await signIn(ANA)
    const order = await ana().submit({
      packet: {
        name: 'live-graph',
        jobs: [
          { name: 'first', op: sh('echo made the first part; echo a warning >&2; sleep 2') },
          { name: 'second', op: sh('true'), after: ['first'] },
          { name: 'third', op: sh('true'), after: ['first'] },
          { name: 'last', op: sh('true'), after: ['second', 'third'] },
        ],
      },
    })
    await page.goto(`${cluster.url}/#/orders/${order.orderId}`)
    await page.locator('svg.graph a.node').first().waitFor()
    // A mark on the window: a reload would wipe it.
    await page.evaluate(() => ((globalThis as unknown as { mark: number }).mark = 1))
    const before = await graphStates()
    expect(Object.keys(before).sort()).toEqual(['first', 'last', 'second', 'third'])
    expect(before.last).toBe('waiting')
    expect(await page.locator('svg.graph .edges path').count()).toBe(4)
    await expect
      .poll(() => page.locator('svg.graph a.node[data-state="succeeded"]').count(), {
        timeout: 20_000,
      })
      .toBe(4)
    expect(await page.evaluate(() => (globalThis as unknown as { mark?: number }).mark)).toBe(1)
    await expect.poll(() => page.locator('.pagehead .pill').first().textContent()).toBe('succeeded')
    // A click on a job opens it.
    await page.locator('svg.graph a.node[data-state="succeeded"]').first().click()
    await page.locator('section.job [data-attempt="1"]').waitFor()
    expect(await page.locator('section.job [data-attempt="1"]').textContent()).toContain('w1')
    // A succeeded job shows the end of its output, read from its product.
    const first = (await ana().jobs(order.orderId)).find((j) => j.name === 'first')!
    await page.goto(`${cluster.url}/#/jobs/${first.id}`)
    const stdout = page.locator('pre[data-stream="stdout"]')
    await stdout.waitFor()
    expect(await stdout.textContent()).toBe('made the first part\n')
    expect(await page.locator('pre[data-stream="stderr"]').textContent()).toBe('a warning\n')
  })

  it('shows why a job waits, cancels a job and then its order from the page', async () => {
    const order = await ana().submit({
      packet: {
        name: 'stuck',
        jobs: [
          { name: 'pinned', op: sh('true'), target: 'nowhere' },
          { name: 'spare', op: sh('true'), target: 'nowhere' },
        ],
      },
    })
    const [job, spare] = await ana().jobs(order.orderId)
    await signIn(ANA)
    await page.goto(`${cluster.url}/#/jobs/${job!.id}`)
    const wait = page.locator('.wait')
    await wait.waitFor()
    expect(await wait.textContent()).toContain('nowhere')

    await page.goto(`${cluster.url}/#/jobs/${spare!.id}`)
    await page.locator('[data-action="cancel-job"]').click()
    await expect.poll(() => page.locator('section.job h1 .pill').textContent()).toBe('cancelled')
    expect((await ana().job(spare!.id)).job.state).toBe('cancelled')

    await page.locator('.crumbs a').click()
    // Ready: it waits for a target, not for another job.
    await page.locator(`svg.graph a.node[data-job="${job!.id}"][data-state="ready"]`).waitFor()
    await page.locator('[data-action="cancel-order"]').click()
    await expect.poll(() => page.locator('.pagehead .pill').first().textContent()).toBe('cancelled')
    await page.locator(`svg.graph a.node[data-job="${job!.id}"][data-state="cancelled"]`).waitFor()
    expect((await ana().order(order.orderId)).fulfilment.state).toBe('cancelled')

    // The state filter: the cancelled order shows, the succeeded ones do not.
    await page.locator('header.top nav a', { hasText: 'Orders' }).click()
    // At a glance: the jobs in memory by state, from GET /v1/stats.
    await expect
      .poll(() => page.locator('[data-panel="glance"] .stat').allTextContents())
      .toContain('0waiting')
    await page.getByRole('button', { name: 'cancelled' }).click()
    await expect.poll(() => page.locator('table.orders tbody tr').count()).toBe(1)
    expect(await page.locator(`tr[data-order="${order.orderId}"]`).count()).toBe(1)
  })

  it('shows another owner none of ana’s orders', async () => {
    const order = await ana().submit({
      packet: { name: 'private', jobs: [{ name: 'a', op: sh('true'), target: 'nowhere' }] },
    })
    await signIn(BOB)
    await page.locator('table.orders').waitFor()
    await page.locator('.empty').waitFor()
    expect(await page.locator(`tr[data-order="${order.orderId}"]`).count()).toBe(0)
    await page.goto(`${cluster.url}/#/orders/${order.orderId}`)
    await page.locator('.error').waitFor()
    expect(await page.locator('.error').textContent()).toMatch(/not found|no order/i)
    expect(await page.locator('svg.graph').count()).toBe(0)
    await ana().cancelOrder(order.orderId)
  })

  it('lists the targets with their state, slots and queues, and the global queue', async () => {
    await signIn(ANA)
    await page.goto(`${cluster.url}/#/targets`)
    const row = page.locator('table.targets tbody tr', { hasText: 'w1' })
    await row.waitFor()
    expect(await row.textContent()).toMatch(/w1\s*worker\s*live/)
    await expect
      .poll(() => page.locator('[data-queue="global"]').textContent())
      .toMatch(/^\d+ in the global queue$/)
  })
})
