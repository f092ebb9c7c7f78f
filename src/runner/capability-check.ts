/**
 * A holder's check of a capability a peer presents: the scheduler's signature (with its public
 * key: a worker can check but not forge), the product asked for, and the expiry. The consumer a
 * capability names is not checked: plain HTTP cannot prove who fetches, so it is logged instead.
 */
import { createPublicKey, verify } from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import { capabilityRefusal, decodeCapability } from '../core/capability.ts'
import type { Capability } from '../core/capability.ts'

/** The scheduler's public key as a worker holds it. */
export interface VerifyKey {
  kid: string
  publicKey: string
}

/** A capability's verdict: the grant, or why it is refused, with the HTTP status to answer. */
export type CapabilityVerdict =
  | { ok: true; capability: Capability }
  | {
      ok: false
      status: 401 | 403
      code: 'CAPABILITY_INVALID' | 'CAPABILITY_EXPIRED' | 'CAPABILITY_WRONG_PRODUCT'
      message: string
      /** The key it names is not the one held: fetching the scheduler's key again may help. */
      unknownKey?: boolean
    }

/** Checks capabilities against one key of the scheduler's. */
export class CapabilityVerifier {
  readonly kid: string
  private readonly key: KeyObject

  constructor(key: VerifyKey) {
    this.kid = key.kid
    this.key = createPublicKey(key.publicKey)
    if (this.key.asymmetricKeyType !== 'ed25519') {
      throw new Error('the scheduler’s capability key must be an Ed25519 public key')
    }
  }

  /** The verdict on `text` for a request for `productId` at `now`. */
  check(text: string, productId: string, now: number): CapabilityVerdict {
    const decoded = decodeCapability(text)
    if (decoded === undefined) {
      return { ok: false, status: 401, code: 'CAPABILITY_INVALID', message: 'malformed capability' }
    }
    const { capability, signed, signature } = decoded
    if (capability.kid !== this.kid) {
      return {
        ok: false,
        status: 401,
        code: 'CAPABILITY_INVALID',
        message: `capability signed with key ${capability.kid}, not the scheduler's key ${this.kid}`,
        unknownKey: true,
      }
    }
    if (!verify(null, Buffer.from(signed), this.key, Buffer.from(signature, 'base64url'))) {
      return {
        ok: false,
        status: 401,
        code: 'CAPABILITY_INVALID',
        message: 'the capability’s signature is not the scheduler’s',
      }
    }
    // Only a genuine capability says why it does not fit: a forged one learns nothing.
    switch (capabilityRefusal(capability, productId, now)) {
      case 'CAPABILITY_WRONG_PRODUCT':
        return {
          ok: false,
          status: 403,
          code: 'CAPABILITY_WRONG_PRODUCT',
          message: `the capability is for product ${capability.product}, not ${productId}`,
        }
      case 'CAPABILITY_EXPIRED':
        return {
          ok: false,
          status: 401,
          code: 'CAPABILITY_EXPIRED',
          message: `the capability expired at ${new Date(capability.exp).toISOString()}`,
        }
      case undefined:
        return { ok: true, capability }
    }
  }
}
