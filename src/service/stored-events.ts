/**
 * Events heard by listeners only once they are stored: an event recorded now is held until the
 * batch that carries it commits, then told to every listener in order. A listener that throws
 * (a stream whose client left, a driver) loses its event; the others, and the commit, go on.
 */
import type { EngineEvent } from '../core/engine/events.ts'

type Listener = (e: EngineEvent) => void

export class StoredEvents {
  private listeners: Listener[] = []
  /** Recorded since the last batch was taken. */
  private unstored: EngineEvent[] = []
  /** In the batch being committed. */
  private delivering: EngineEvent[] = []
  private readonly onListenerError: (error: unknown, event: EngineEvent) => void

  /** @param onListenerError by default, a line on standard error */
  constructor(onListenerError?: (error: unknown, event: EngineEvent) => void) {
    this.onListenerError =
      onListenerError ??
      ((error, event) =>
        process.stderr.write(
          `lockstep: a listener failed on ${event.type}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
        ))
  }

  /** Listens to every event once it is stored, in order; returns a function that stops it. */
  on(listener: Listener): () => void {
    this.listeners.push(listener)
    return () => {
      this.listeners = this.listeners.filter((l) => l !== listener)
    }
  }

  /** An event the engine emitted, to be told once stored (kept only while anyone listens). */
  recorded(e: EngineEvent): void {
    if (this.listeners.length > 0) this.unstored.push(e)
  }

  /** The events recorded so far go into the batch being taken. */
  taken(): void {
    this.delivering = this.unstored
    this.unstored = []
  }

  /** The batch taken last is stored: its events are told. */
  stored(): void {
    const events = this.delivering
    this.delivering = []
    for (const e of events) {
      for (const listener of this.listeners) {
        try {
          listener(e)
        } catch (error) {
          this.onListenerError(error, e)
        }
      }
    }
  }
}
