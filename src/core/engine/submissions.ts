/**
 * Submission: packets stored and ordered, artifacts bound and ordered. It checks what users
 * write (`compile…()`), builds the order's jobs and locks with the pure builders of
 * `submission.ts`, and starts the order. A submission that fails its checks changes nothing: a
 * bad order leaves no packet behind.
 */
import type { Clock } from '../clock.ts'
import { LockstepError, SitesOfflineError, ValidationError } from '../errors.ts'
import { quotaExceeded } from '../limits.ts'
import type { IdGenerator } from '../ids.ts'
import { compileOrderOptions } from '../order.ts'
import type { Limits } from '../limits.ts'
import { compilePacket, packetLimits } from '../packet.ts'
import type { Packet } from '../packet.ts'
import type { EngineEvents } from './events.ts'
import type { OrderFulfilment } from './fulfilment.ts'
import { fulfilmentOf } from './order-record.ts'
import type { OrdersInFlight } from './orders-in-flight.ts'
import { artifactSubmission, compileArtifactOrder, packetSubmission } from './submission.ts'
import type { PacketAccess, PacketRecord, StoredPackets } from './stored-packets.ts'

/** What submission needs of the engine. */
export interface SubmissionParts {
  clock: Clock
  ids: IdGenerator
  events: EngineEvents
  packets: StoredPackets
  orders: OrdersInFlight
  /** The id of the target that runs an artifact's initiator jobs. */
  initiator: string
  /** The workers holding a project's data, live and offline, each in id order. */
  sitesOf(project: string): { live: string[]; offline: string[] }
  limits: Limits
}

export class Submissions {
  private readonly parts: SubmissionParts

  constructor(parts: SubmissionParts) {
    this.parts = parts
  }

  /**
   * Checks and stores a packet of `owner`; a name the owner used before gets a new version under
   * a new id. Owners' names are apart: ana's `p` is not bob's `p`.
   */
  createPacket(input: unknown, owner: string): PacketRecord {
    return this.storePacket(this.compilePacket(input), owner)
  }

  /**
   * Orders a stored packet: by id, or by name among the submitter's own packets. With
   * `every-owner` access (an admin's) any packet is reachable, by id or as `owner/name`. Another
   * owner's packet is PACKET_NOT_FOUND, as one that does not exist.
   */
  orderPacket(
    packetRef: string,
    options: unknown,
    submitter: string,
    access: PacketAccess = 'own',
  ): OrderFulfilment {
    const record = this.parts.packets.resolve(packetRef, submitter, access)
    if (record === undefined) {
      throw new LockstepError('PACKET_NOT_FOUND', `no packet has the id or name '${packetRef}'`)
    }
    const packet = record.packet
    const resolved = compileOrderOptions(options, new Set(packet.jobs.map((j) => j.name)))
    refuseSiteOptions(options)
    this.admit(resolved.owner ?? submitter)
    const now = this.parts.clock.now()
    const submission = packetSubmission(record.id, packet, resolved, submitter, this.parts.ids, now)
    return fulfilmentOf(this.parts.orders.start(submission))
  }

  /** Stores a packet and orders it once. */
  submitPacket(input: unknown, options: unknown, submitter: string): OrderFulfilment {
    // Both checked before anything is stored: a bad order leaves no packet behind.
    const packet = this.compilePacket(input)
    compileOrderOptions(options, new Set(packet.jobs.map((j) => j.name)))
    refuseSiteOptions(options)
    const record = this.storePacket(packet, submitter)
    return this.orderPacket(record.id, options, submitter)
  }

  /**
   * Binds an artifact over the live workers that hold its project's data (in id order) and the
   * initiator, and orders it, recording the sites it was bound over. Throws
   * NO_WORKER_FOR_PROJECT when no worker holds the data, and SITES_OFFLINE when some that do are
   * offline, unless the order's `minSites` are live.
   */
  submitArtifact(input: unknown, options: unknown, submitter: string): OrderFulfilment {
    const { artifact, resolved } = compileArtifactOrder(input, options)
    this.admit(resolved.owner ?? submitter)
    const { live, offline } = this.parts.sitesOf(artifact.project)
    if (live.length + offline.length === 0) {
      throw new LockstepError(
        'NO_WORKER_FOR_PROJECT',
        `no worker holds the data of project '${artifact.project}'`,
      )
    }
    const { minSites, waitForSitesMs } = resolved
    if (minSites === undefined ? offline.length > 0 : live.length < minSites) {
      throw new SitesOfflineError(artifact.project, live, offline, minSites, waitForSitesMs)
    }
    const context = { initiator: this.parts.initiator, workers: live }
    const now = this.parts.clock.now()
    const { maxJobsPerOrder: maxJobs, maxLocksPerOrder: maxLocks } = this.parts.limits
    const submission = artifactSubmission(
      artifact,
      context,
      resolved,
      submitter,
      this.parts.ids,
      now,
      { maxJobs, maxLocks },
    )
    submission.order.sites = {
      bound: live,
      offline,
      ...(minSites === undefined ? {} : { minSites }),
    }
    return fulfilmentOf(this.parts.orders.start(submission, artifact))
  }

  /** A packet checked against this engine's limits. */
  private compilePacket(input: unknown): Packet {
    return compilePacket(input, packetLimits(this.parts.limits))
  }

  /** QUOTA_EXCEEDED when the owner already has as many orders in flight as it may. */
  private admit(owner: string): void {
    const limit = this.parts.limits.maxOrdersInFlightPerOwner
    const running = this.parts.orders.runningOf(owner)
    if (running >= limit) {
      throw quotaExceeded(
        `owner '${owner}' has ${running} orders in flight; the limit is ${limit} orders in flight per owner: wait for some to end, or cancel some`,
      )
    }
  }

  private storePacket(packet: Packet, owner: string): PacketRecord {
    const now = this.parts.clock.now()
    const record = this.parts.packets.add(packet, owner, this.parts.ids.next(now), now)
    this.parts.events.emit('packet:created', { packetId: record.id, name: record.name, packet })
    return record
  }
}

/** A packet's jobs are not bound over sites: the options that speak of sites are an error. */
function refuseSiteOptions(options: unknown): void {
  if (typeof options !== 'object' || options === null) return
  const given = (['minSites', 'waitForSitesMs'] as const).filter((k) => k in options)
  if (given.length === 0) return
  throw new ValidationError(
    given.map((path) => ({
      path,
      message: "applies to an artifact's order only: a packet's jobs are not bound over sites",
    })),
  )
}
