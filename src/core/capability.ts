/**
 * Capabilities: what a worker asks of a peer that fetches one of its products. The scheduler
 * signs one per assignment input, naming the product, the consumer (the target whose job reads
 * it) and an expiry; the holder checks the signature with the scheduler's public key, so a
 * worker can check a capability but never make one.
 *
 * This module is the pure part: the payload, its compact text form
 * (`base64url(JSON payload).base64url(signature)`) and the checks that need no key. Signing lives
 * in `src/service/capabilities.ts`, the signature check in `src/runner/capability-check.ts`.
 *
 * Invariant: the signature covers the payload's exact base64url text, never a re-serialisation,
 * so what is checked is byte for byte what was signed.
 */
import { z } from 'zod'

/** What a capability grants: one product, to one consumer, until a time. */
export const capabilitySchema = z.strictObject({
  /** The format's version. */
  v: z.literal(1),
  /** Which of the scheduler’s keys signed it: a digest of its public key. */
  kid: z.string().min(1).max(64),
  /** The product it lets its bearer fetch. */
  product: z.string().min(1),
  /**
   * The target whose job reads the product. Plain HTTP cannot prove who fetches, so the holder
   * only logs it: the capability is bound to the product and the expiry, and names its consumer
   * for the audit trail.
   */
  consumer: z.string().min(1),
  /** When it expires, in ms since the epoch. */
  exp: z.number().int(),
})

/** A capability's payload. */
export type Capability = z.infer<typeof capabilitySchema>

/** A capability read back from its text: the payload, and the exact text its signature covers. */
export interface DecodedCapability {
  capability: Capability
  /** The base64url payload as it arrived: what the signature was made over. */
  signed: string
  /** The signature, base64url. */
  signature: string
}

/** The `Authorization` scheme a peer presents a capability under. */
export const CAPABILITY_SCHEME = 'Capability'

/** The payload's text: what the scheduler signs. */
export function capabilityPayload(c: Capability): string {
  return toBase64Url(JSON.stringify(c))
}

/** The compact text form: `payload.signature`, both base64url. */
export function encodeCapability(signed: string, signature: string): string {
  return `${signed}.${signature}`
}

/** Reads a capability's text; undefined for anything malformed. */
export function decodeCapability(text: string): DecodedCapability | undefined {
  const parts = text.split('.')
  if (parts.length !== 2) return undefined
  const [signed, signature] = parts as [string, string]
  if (!BASE64URL.test(signed) || !BASE64URL.test(signature) || signature === '') return undefined
  let json: unknown
  try {
    json = JSON.parse(fromBase64Url(signed))
  } catch {
    return undefined
  }
  const parsed = capabilitySchema.safeParse(json)
  return parsed.success ? { capability: parsed.data, signed, signature } : undefined
}

/** Why a well-signed capability does not let its bearer fetch a product. */
export type CapabilityRefusal = 'CAPABILITY_EXPIRED' | 'CAPABILITY_WRONG_PRODUCT'

/** The checks that need no key: the product asked for, and the time. */
export function capabilityRefusal(
  c: Capability,
  productId: string,
  now: number,
): CapabilityRefusal | undefined {
  if (c.product !== productId) return 'CAPABILITY_WRONG_PRODUCT'
  if (now >= c.exp) return 'CAPABILITY_EXPIRED'
  return undefined
}

/** The capability in an `Authorization` header, when it carries one. */
export function capabilityOfHeader(authorization: string | undefined): string | undefined {
  const prefix = `${CAPABILITY_SCHEME} `
  return authorization?.startsWith(prefix) === true
    ? authorization.slice(prefix.length).trim()
    : undefined
}

const BASE64URL = /^[A-Za-z0-9_-]*$/

function toBase64Url(text: string): string {
  let binary = ''
  for (const byte of new TextEncoder().encode(text)) binary += String.fromCharCode(byte)
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
}

function fromBase64Url(text: string): string {
  const binary = atob(text.replace(/-/g, '+').replace(/_/g, '/'))
  return new TextDecoder('utf-8', { fatal: true }).decode(
    Uint8Array.from(binary, (ch) => ch.charCodeAt(0)),
  )
}
