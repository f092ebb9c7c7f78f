/**
 * The scheduler's capability signer: one Ed25519 key, whose private half never leaves the
 * scheduler. Every assignment input gets a capability for its product and its consumer; the
 * holder checks it with the public half, which workers fetch at `GET /v1/capabilities/key`.
 * A worker can therefore check a capability but never make one (an HMAC key shared with the
 * workers would let any of them forge capabilities for any product).
 *
 * The key is kept in the data directory by `lockstep server` (a restart keeps the capabilities
 * already handed out valid); without one the service makes a fresh key per process.
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign,
} from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import type { Clock } from '../core/clock.ts'
import { capabilityPayload, encodeCapability } from '../core/capability.ts'
import type { Assignment } from '../core/protocol.ts'

/** The public half of the scheduler's key, as workers receive it. */
export interface CapabilityKey {
  /** The key's id: capabilities name it, so a worker knows when to fetch a new key. */
  kid: string
  /** The Ed25519 public key, SPKI PEM. */
  publicKey: string
}

/** Options of a {@link CapabilitySigner}. */
export interface CapabilityOptions {
  /** The Ed25519 private key (PKCS#8 PEM). @default a fresh key, for this process only */
  privateKey?: string
  /** How long a capability lets its bearer fetch. @default 600000 (10 minutes) */
  ttlMs?: number
}

/** Ten minutes: long enough to start a job and fetch its inputs, short enough to leak little. */
export const DEFAULT_CAPABILITY_TTL_MS = 10 * 60_000

export class CapabilitySigner {
  readonly key: CapabilityKey
  private readonly privateKey: KeyObject
  private readonly ttlMs: number
  private readonly clock: Clock

  constructor(clock: Clock, options: CapabilityOptions = {}) {
    this.clock = clock
    this.ttlMs = options.ttlMs ?? DEFAULT_CAPABILITY_TTL_MS
    this.privateKey =
      options.privateKey === undefined
        ? generateKeyPairSync('ed25519').privateKey
        : createPrivateKey(options.privateKey)
    if (this.privateKey.asymmetricKeyType !== 'ed25519') {
      throw new Error('the capability key must be an Ed25519 private key')
    }
    const publicKey = createPublicKey(this.privateKey)
    const der = publicKey.export({ type: 'spki', format: 'der' })
    this.key = {
      kid: createHash('sha256').update(der).digest('base64url').slice(0, 16),
      publicKey: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    }
  }

  /** A capability for `product`, fetched by `consumer`, valid for the configured time from now. */
  sign(product: string, consumer: string): string {
    const signed = capabilityPayload({
      v: 1,
      kid: this.key.kid,
      product,
      consumer,
      exp: this.clock.now() + this.ttlMs,
    })
    return encodeCapability(
      signed,
      sign(null, Buffer.from(signed), this.privateKey).toString('base64url'),
    )
  }

  /** The assignments with a capability on each input, for that input's product and the target. */
  attach(assignments: Assignment[]): Assignment[] {
    // Copies: the engine's own records of an assignment never hold a capability.
    return assignments.map((a) => ({
      ...a,
      inputs: a.inputs.map((input) => ({
        ...input,
        capability: this.sign(input.productId, a.target),
      })),
    }))
  }
}

/**
 * The private key kept at `path` (PKCS#8 PEM), made there (mode 0600) when missing: a scheduler
 * that restarts keeps signing with the key its workers already hold.
 */
export function capabilityKeyFile(path: string): string {
  if (existsSync(path)) return readFileSync(path, 'utf8')
  const pem = generateKeyPairSync('ed25519')
    .privateKey.export({ type: 'pkcs8', format: 'pem' })
    .toString()
  writeFileSync(path, pem, { mode: 0o600, flag: 'wx' })
  return pem
}
