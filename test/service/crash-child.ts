/**
 * A scheduler with simulated workers, for the crash test: it submits ORDERS random orders (those
 * still missing after a restart), runs them on four in-process workers that sometimes fail, and
 * prints `order <id> <jobs>` once an order is acknowledged, `stored <n>` each time another
 * PROGRESS successful results of this life are stored, then `done` when every order ended. The
 * test kills it with SIGKILL at moments it picks from those lines and starts it again on the same
 * store. All its randomness (orders, results, timing, the engine's backoff jitter) comes from SEED.
 */
import { LockstepError } from '../../src/core/errors.ts'
import type { PacketOptions } from '../../src/core/packet.ts'
import { SchedulerService } from '../../src/service/service.ts'
import type { HeartbeatInput, HeartbeatReply } from '../../src/core/protocol.ts'
import { openStore } from '../../src/store/open-store.ts'

const url = process.env.STORE_URL!
const ORDERS = Number(process.env.ORDERS ?? 40)
const JOBS = Number(process.env.JOBS ?? 50)
const WORKERS = ['w1', 'w2', 'w3', 'w4']
const PROGRESS = Number(process.env.PROGRESS ?? 25)

let seed = Number(process.env.SEED ?? 1)
const random = () => {
  seed = (seed * 1103515245 + 12345) % 2147483648
  return seed / 2147483648
}

function packet(n: number): PacketOptions {
  return {
    name: `crash-${n}`,
    resources: [{ key: 'lic', value: 'one', unique: true }],
    failure: { attempts: 3, backoffMs: 20, onExhausted: n % 3 === 0 ? 'continue' : 'fail-order' },
    jobs: Array.from({ length: JOBS }, (_, i) => ({
      name: `j${i}`,
      op: { builtin: 'noop' },
      after:
        i === 0 ? [] : [`j${Math.floor(random() * i)}`, ...(random() < 0.3 ? [`j${i - 1}`] : [])],
      ...(random() < 0.05 ? { uses: ['lic'] } : {}),
    })).map((j) => ({ ...j, after: [...new Set(j.after)] })),
  }
}

const service = await SchedulerService.start({
  store: openStore(url),
  engine: { leaseMs: 300, cacheTimeoutMs: 5, depsTimeoutMs: 5, random },
  onFatal: (e) => {
    process.stderr.write(`fatal: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`)
    process.exit(3)
  },
})
const write = (line: string) => process.stdout.write(`${line}\n`)
write('ready')

// Fresh workers: whatever the last life of this process ran is gone.
for (const id of WORKERS) await service.registerTarget({ id, slots: 8, running: [] })

let stopped = false
/** Successful results of this life that the service has stored (it answers after the commit). */
let stored = 0
function count(sent: NonNullable<HeartbeatInput['results']>, reply: HeartbeatReply): void {
  const refused = new Set(reply.refused.map((r) => `${r.jobId}#${r.attempt}`))
  const before = stored
  stored += sent.filter((r) => r.result.ok && !refused.has(`${r.jobId}#${r.attempt}`)).length
  if (Math.floor(stored / PROGRESS) > Math.floor(before / PROGRESS)) write(`stored ${stored}`)
}

async function worker(id: string): Promise<void> {
  let results: NonNullable<HeartbeatInput['results']> = []
  while (!stopped) {
    let reply
    try {
      reply = await service.heartbeat(id, { results, free: 8 })
    } catch (e) {
      if (e instanceof LockstepError && e.code === 'TARGET_NOT_FOUND') {
        await service.registerTarget({ id, slots: 8, running: [] })
        results = []
        continue
      }
      throw e
    }
    count(results, reply)
    results = []
    for (const a of reply.assignments) {
      results.push({
        jobId: a.jobId,
        attempt: a.attempt,
        result: random() < 0.9 ? { ok: true } : { ok: false, exitCode: 1 },
      })
    }
    await new Promise((r) => setTimeout(r, 1 + Math.floor(random() * 5)))
  }
}
const workers = WORKERS.map(worker)

const have = (await service.store.listOrders(ORDERS + 1)).length
for (let n = have; n < ORDERS; n++) {
  const order = await service.submitPacket(packet(n), { priority: 1 + (n % 100) }, 'crash')
  write(`order ${order.orderId} ${order.total}`)
}

for (;;) {
  const running = (await service.listOrders(ORDERS + 1)).filter((o) => o.state === 'running')
  if (running.length === 0) break
  await new Promise((r) => setTimeout(r, 20))
}
stopped = true
await Promise.all(workers)
await service.close()
write('done')
