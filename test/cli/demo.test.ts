/**
 * The demo's result reader against a real scheduler (the wiring `lockstep up` runs, with its
 * admin and worker tokens) and a real worker agent: it prints what an order's last job made, also
 * when that job has a cache key, whose product is `cache:KEY` and not named after the job.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { LockstepClient } from '../../src/client/client.ts'
import { finalResult } from '../../src/cli/demo.ts'
import { serve } from '../../src/server/serve.ts'
import type { Serving } from '../../src/server/serve.ts'
import { follow } from '../../src/cli/workbench-commands.ts'
import { WorkerAgent } from '../../src/worker/agent.ts'

const ADMIN = 'admin-token-123'
const WORKER = 'worker-token-123'

// The last job's product is `cache:answer@1`; the job before it makes a product of its own, so a
// reader that takes the wrong job's product prints 'question', not the answer.
const packet = `
name: cached-answer
jobs:
  - name: question
    op: { exec: [sh, -c, 'echo question'] }
  - name: answer
    cache: answer@1
    after: [question]
    op: { exec: [sh, -c, 'echo "{\\"answer\\":42}" > "$LOCKSTEP_OUT/result.json"; echo done'] }
`

let dir: string
let serving: Serving
let agent: WorkerAgent
let c: LockstepClient

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'lockstep-demo-'))
  serving = await serve({
    port: 0,
    host: '127.0.0.1',
    tokens: [
      { role: 'admin', name: 'you', token: ADMIN },
      { role: 'worker', name: 'worker-*', token: WORKER },
    ],
    allowDownload: true,
    dataDir: join(dir, 'scheduler'),
    log: false,
  })
  agent = await WorkerAgent.start({
    server: serving.url,
    token: WORKER,
    id: 'worker-1',
    cacheDir: join(dir, 'worker-1'),
  })
  c = new LockstepClient({ url: serving.url, token: ADMIN })
})

afterEach(async () => {
  await agent.stop()
  await serving.close()
  rmSync(dir, { recursive: true, force: true })
})

/** Submits the packet and follows its order to the end, as the demo does. */
async function run(): Promise<string> {
  const order = await c.submitDocument(packet)
  const final = await follow(c, order, true, () => {})
  expect(final.state).toBe('succeeded')
  return order.orderId
}

describe('the demo', () => {
  it('prints the product of a last job that has a cache key', async () => {
    const orderId = await run()
    expect(await finalResult(c, orderId)).toBe('{"answer":42}')
  })

  it('prints it again when a second order is served that product from the cache', async () => {
    await run()
    const orderId = await run()
    const answer = (await c.jobs(orderId)).find((j) => j.name === 'answer')!
    expect(answer.attempt).toBe(0)
    expect(await finalResult(c, orderId)).toBe('{"answer":42}')
  })
})
