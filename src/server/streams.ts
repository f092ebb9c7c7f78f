/**
 * The event streams a server holds open: at most so many per caller (QUOTA_EXCEEDED beyond), and
 * every one ended when the server closes.
 */
import { quotaExceeded } from '../core/limits.ts'
import type { Caller } from './auth.ts'

export class EventStreams {
  private readonly enders = new Set<() => void>()
  private readonly perCaller = new Map<string, number>()
  private readonly max: number

  constructor(maxPerCaller: number) {
    this.max = maxPerCaller
  }

  /**
   * Opens a stream for a caller, whose `end` the server calls on close; returns the function that
   * releases it. Callers without a token of their own (an open server's) count by address.
   */
  open(caller: Caller, address: string, end: () => void): () => void {
    const key =
      caller.name === 'anonymous' ? `${caller.name}@${address}` : `${caller.role}:${caller.name}`
    const held = this.perCaller.get(key) ?? 0
    if (held >= this.max) {
      throw quotaExceeded(
        `${caller.name} holds ${held} event streams open; the limit is ${this.max} streams per caller: close one first`,
      )
    }
    this.perCaller.set(key, held + 1)
    this.enders.add(end)
    let released = false
    return () => {
      if (released) return
      released = true
      this.enders.delete(end)
      const left = (this.perCaller.get(key) ?? 1) - 1
      if (left === 0) this.perCaller.delete(key)
      else this.perCaller.set(key, left)
    }
  }

  /** Ends every open stream. */
  endAll(): void {
    for (const end of [...this.enders]) end()
  }
}
