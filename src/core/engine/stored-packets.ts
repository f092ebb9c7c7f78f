/**
 * The packets an engine holds: each stored version by id, and the latest version of each name.
 *
 * Invariant: a name answers with its latest version; a packet once stored is never changed, a
 * new version gets a new id.
 */
import type { Id } from '../ids.ts'
import type { Packet } from '../packet.ts'

/** A stored packet. */
export interface PacketRecord {
  id: Id
  name: string
  packet: Packet
  createdAt: number
}

/** Stored packets by id and by name. */
export class StoredPackets {
  private readonly byId = new Map<Id, PacketRecord>()
  private readonly byName = new Map<string, PacketRecord>()

  get size(): number {
    return this.byId.size
  }

  /** Stores a new version under a new id: it becomes the latest of its name. */
  add(packet: Packet, id: Id, createdAt: number): PacketRecord {
    const record: PacketRecord = { id, name: packet.name, packet, createdAt }
    this.byId.set(record.id, record)
    this.byName.set(record.name, record)
    return record
  }

  /** Adds versions stored before, in any order: the latest created answers for its name. */
  restore(records: readonly PacketRecord[]): void {
    for (const p of records) {
      this.byId.set(p.id, p)
      const latest = this.byName.get(p.name)
      if (latest === undefined || latest.createdAt <= p.createdAt) this.byName.set(p.name, p)
    }
  }

  /** A packet by id, or the latest of that name. */
  get(idOrName: string): PacketRecord | undefined {
    return this.byId.get(idOrName) ?? this.byName.get(idOrName)
  }
}
