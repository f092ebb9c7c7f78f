import { afterEach, describe, expect, it } from 'vitest'
import { Engine, FakeClock, LockstepError } from '../../../src/index.ts'
import type { LimitsOptions } from '../../../src/index.ts'

let engines: Engine[] = []
afterEach(() => {
  for (const e of engines) e.stop()
  engines = []
})

function engine(limits: LimitsOptions): Engine {
  const e = new Engine({ clock: new FakeClock(), limits })
  e.registerTarget({ id: 'w1', projects: ['clinic'], slots: 4 })
  e.registerTarget({ id: 'w2', projects: ['clinic'], slots: 4 })
  engines.push(e)
  return e
}

const packet = (jobs: number) => ({
  name: 'p',
  jobs: Array.from({ length: jobs }, (_, i) => ({ name: `j${i}`, op: { builtin: 'noop' } })),
})

const noop = { builtin: 'noop' }

/** Submits an artifact of project clinic, bound over w1 and w2. */
const artifact = (steps: unknown[]) => (e: Engine) =>
  e.submitArtifact({ project: 'clinic', steps }, {}, 'ana')

function refusal(fn: () => unknown): { code: string; status: number; message: string } {
  try {
    fn()
  } catch (e) {
    if (e instanceof LockstepError) return { code: e.code, status: e.status, message: e.message }
    throw e
  }
  throw new Error('not refused')
}

describe('limits of an engine', () => {
  it.each([
    {
      name: 'a packet with more jobs than max jobs per order',
      limits: { maxJobsPerOrder: 3 },
      submit: (e: Engine) => e.submitPacket(packet(4), {}, 'ana'),
      message: 'jobs: has 4 jobs; the limit is 3 jobs per order',
    },
    {
      name: 'an artifact that binds to more jobs than max jobs per order',
      limits: { maxJobsPerOrder: 5 },
      submit: artifact([
        { kind: 'initialize', op: noop },
        { kind: 'iterate', iterations: 2, steps: [{ kind: 'parallel', op: noop }] },
        { kind: 'finalize', op: noop },
      ]),
      message: 'steps: binds to 6 jobs over 2 workers; the limit is 5 jobs per order',
    },
    {
      name: 'an artifact that binds to more locks than max locks per order',
      limits: { maxLocksPerOrder: 3 },
      submit: artifact([
        { kind: 'parallel', op: noop, distribution: 'arrange' },
        { kind: 'parallel', op: noop },
      ]),
      message: 'steps: binds to 4 locks over 2 workers; the limit is 3 locks per order',
    },
  ])('refuses $name with LIMIT_EXCEEDED, storing nothing', ({ limits, submit, message }) => {
    const e = engine(limits)
    const events: string[] = []
    e.on((ev) => events.push(ev.type))
    expect(refusal(() => submit(e))).toEqual({ code: 'LIMIT_EXCEEDED', status: 400, message })
    expect(events).toEqual([])
    expect(e.listOrders()).toEqual([])
  })

  it('refuses an owner its next order while it has as many in flight as it may, and takes it once one ends', () => {
    const e = engine({ maxOrdersInFlightPerOwner: 2 })
    const first = e.submitPacket(packet(1), {}, 'ana')
    e.submitPacket(packet(1), {}, 'ana')
    expect(refusal(() => e.submitPacket(packet(1), {}, 'ana'))).toEqual({
      code: 'QUOTA_EXCEEDED',
      status: 429,
      message:
        "owner 'ana' has 2 orders in flight; the limit is 2 orders in flight per owner: wait for some to end, or cancel some",
    })
    // Another owner has a quota of its own; an order placed for ana by bob counts as ana's.
    e.submitPacket(packet(1), {}, 'bob')
    expect(refusal(() => e.submitPacket(packet(1), { owner: 'ana' }, 'bob')).code).toBe(
      'QUOTA_EXCEEDED',
    )
    e.cancelOrder(first.orderId)
    expect(e.submitPacket(packet(1), {}, 'ana').state).toBe('running')
  })

  it('counts an order that ends by succeeding, and one restored from the store', () => {
    const e = engine({ maxOrdersInFlightPerOwner: 1 })
    const order = e.submitPacket(packet(1), {}, 'ana')
    const [a] = e.pick('w1', 1)
    e.complete('w1', a!.jobId, a!.attempt, { ok: true })
    expect(e.fulfilment(order.orderId).state).toBe('succeeded')
    e.submitPacket(packet(1), {}, 'ana')

    const again = engine({ maxOrdersInFlightPerOwner: 1 })
    again.restore({
      packets: [],
      orders: e
        .listOrders()
        .flatMap((o) =>
          o.state === 'running'
            ? [{ stored: { order: o, iterations: 0 }, jobs: e.jobs(o.id), locks: [] }]
            : [],
        ),
      attempts: [],
      targets: [],
      products: [],
    })
    expect(refusal(() => again.submitPacket(packet(1), {}, 'ana')).code).toBe('QUOTA_EXCEEDED')
  })

  it('refuses a limit that is not a positive integer, naming it', () => {
    expect(() => new Engine({ limits: { maxJobsPerOrder: 0 } })).toThrow(
      'maxJobsPerOrder: must be a positive integer',
    )
  })
})
