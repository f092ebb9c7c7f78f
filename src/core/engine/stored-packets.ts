/**
 * The packets an engine holds: each stored version by id, and the latest version of each name of
 * each owner.
 *
 * Invariants: a name answers with its owner's latest version, never another owner's; a packet
 * once stored is never changed, a new version gets a new id.
 */
import type { Id } from '../ids.ts'
import type { Packet } from '../packet.ts'

/** A stored packet. */
export interface PacketRecord {
  id: Id
  name: string
  /** Who stored it: only they (and admins) order it, by id or by name. */
  owner: string
  packet: Packet
  createdAt: number
}

/** Which packets a caller reaches: its own, or every owner's (an admin). */
export type PacketAccess = 'own' | 'every-owner'

/** Stored packets by id, and by owner and name. */
export class StoredPackets {
  private readonly byId = new Map<Id, PacketRecord>()
  /** The latest version of each name, by owner. */
  private readonly byOwner = new Map<string, Map<string, PacketRecord>>()

  get size(): number {
    return this.byId.size
  }

  /** Stores a new version under a new id: it becomes the latest of its owner's name. */
  add(packet: Packet, owner: string, id: Id, createdAt: number): PacketRecord {
    const record: PacketRecord = { id, name: packet.name, owner, packet, createdAt }
    this.byId.set(record.id, record)
    this.names(owner).set(record.name, record)
    return record
  }

  /** Adds versions stored before, in any order: the latest created answers for its name. */
  restore(records: readonly PacketRecord[]): void {
    for (const p of records) {
      this.byId.set(p.id, p)
      const names = this.names(p.owner)
      const latest = names.get(p.name)
      if (latest === undefined || latest.createdAt <= p.createdAt) names.set(p.name, p)
    }
  }

  /** A packet by id, whoever owns it. */
  byIdOnly(id: string): PacketRecord | undefined {
    return this.byId.get(id)
  }

  /** The latest of an owner's packets of that name. */
  named(owner: string, name: string): PacketRecord | undefined {
    return this.byOwner.get(owner)?.get(name)
  }

  /**
   * What `ref` names for `reader`: a packet id, or a name among the reader's own packets. With
   * `every-owner` access, any owner's packet by id, or by `owner/name` (packet names hold no `/`).
   */
  resolve(ref: string, reader: string, access: PacketAccess): PacketRecord | undefined {
    const every = access === 'every-owner'
    const byId = this.byId.get(ref)
    if (byId !== undefined) return every || byId.owner === reader ? byId : undefined
    const slash = ref.lastIndexOf('/')
    if (every && slash >= 0) return this.named(ref.slice(0, slash), ref.slice(slash + 1))
    return this.named(reader, ref)
  }

  private names(owner: string): Map<string, PacketRecord> {
    let names = this.byOwner.get(owner)
    if (names === undefined) this.byOwner.set(owner, (names = new Map<string, PacketRecord>()))
    return names
  }
}
