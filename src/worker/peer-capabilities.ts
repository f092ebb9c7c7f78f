/**
 * What a worker checks before it serves a product to a peer: a capability signed by the
 * scheduler's key for that product. The key is fetched at start, and again (at most every few
 * seconds) when a capability names a key this worker does not know: the scheduler may have a new
 * one after a restart without its key file.
 */
import type { Logger } from 'pino'
import type { LockstepClient } from '../client/client.ts'
import { CapabilityVerifier } from '../runner/capability-check.ts'
import type { CapabilityVerdict, VerifyKey } from '../runner/capability-check.ts'

/** The least time between two fetches of the scheduler's key. */
const KEY_RETRY_MS = 5000

export class PeerCapabilities {
  private verifier: CapabilityVerifier | undefined
  /** The fetch of the scheduler's key in flight, and when the last fetch after start began. */
  private keyLoading: Promise<void> | undefined
  private keyRefreshedAt = -Infinity
  private readonly client: LockstepClient
  private readonly log: Logger

  constructor(client: LockstepClient, log: Logger) {
    this.client = client
    this.log = log
  }

  /**
   * Fetches the scheduler's public key. Failing is not fatal: peers' capabilities are refused
   * until a later fetch succeeds, and they fall back to the scheduler's relay.
   */
  loadKey(): Promise<void> {
    this.keyLoading ??= (async () => {
      try {
        const key = await this.client.request<VerifyKey>('GET', '/v1/capabilities/key')
        this.verifier = new CapabilityVerifier(key)
      } catch (e) {
        this.log.warn({ error: (e as Error).message }, 'could not fetch the capability key')
      } finally {
        this.keyLoading = undefined
      }
    })()
    return this.keyLoading
  }

  /** A peer's capability for `productId`: checked, and logged with the consumer it names. */
  async check(text: string, productId: string): Promise<CapabilityVerdict> {
    const check = (): CapabilityVerdict =>
      this.verifier?.check(text, productId, Date.now()) ?? {
        ok: false,
        status: 401,
        code: 'CAPABILITY_INVALID',
        message: 'this worker does not hold the scheduler’s key yet',
        unknownKey: true,
      }
    let verdict = check()
    // Asked at once the first time, then at most every few seconds, so that made-up key ids
    // cannot make it call the scheduler on every request.
    if (
      !verdict.ok &&
      verdict.unknownKey === true &&
      Date.now() - this.keyRefreshedAt > KEY_RETRY_MS
    ) {
      this.keyRefreshedAt = Date.now()
      await this.loadKey()
      verdict = check()
    }
    if (verdict.ok) {
      this.log.info(
        { product: productId, consumer: verdict.capability.consumer },
        'serving a product to a peer',
      )
    } else {
      this.log.warn({ product: productId, code: verdict.code }, 'refused a capability')
    }
    return verdict
  }
}
