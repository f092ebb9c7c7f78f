/**
 * Recovery: a fresh engine's parts rebuilt from what the store holds, emitting nothing for what
 * is already stored.
 */
import type { Scheduler } from '../dispatch/scheduler.ts'
import type { Target } from '../model.ts'
import type { TargetFulfilment } from './fulfilment.ts'
import type { JobRecord } from './order-record.ts'
import type { OrdersInFlight, StoredOrder } from './orders-in-flight.ts'
import type { ProductLedger } from './product-ledger.ts'
import { capabilitiesOf } from './registration.ts'
import type { PacketRecord, StoredPackets } from './stored-packets.ts'
import type { TargetRegistry } from './target-registry.ts'

/** What an engine rebuilds from: the store's snapshot of what is in flight. */
export interface EngineState {
  packets: PacketRecord[]
  orders: StoredOrder[]
  attempts: TargetFulfilment[]
  targets: { target: Target; live: boolean }[]
  products: { productId: string; targetId: string; hash?: string | undefined }[]
}

/** The parts of an engine that recovery fills. */
export interface RecoveredParts {
  initiator: string
  leaseMs: number
  packets: StoredPackets
  registry: TargetRegistry<JobRecord>
  dispatch: Scheduler
  ledger: ProductLedger
  orders: OrdersInFlight
}

/**
 * Ready jobs are queued again, running attempts stay with their targets (whose leases start
 * over, a grace period for live workers to heartbeat), backoffs and timeouts resume where they
 * were. Attempts on targets that were not live are lost at once, with events.
 */
export function recover(parts: RecoveredParts, state: EngineState): void {
  const { packets, registry, dispatch, ledger, orders } = parts
  if (orders.size > 0 || packets.size > 0) throw new Error('restore() needs a fresh engine')
  packets.restore(state.packets)
  registry.restore(
    state.targets.filter((t) => t.target.id !== parts.initiator),
    (target) => capabilitiesOf(target.kind, parts.leaseMs, target.runs),
  )
  for (const p of state.products) {
    if (registry.isLive(p.targetId)) dispatch.addCached(p.targetId, p.productId)
  }
  ledger.restore(state.products)
  orders.restore(state.orders, state.attempts, (id) => registry.get(id))
}
