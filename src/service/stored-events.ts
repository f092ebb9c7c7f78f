/**
 * Events heard by listeners only once they are stored: an event recorded now is held until the
 * batch that carries it commits, then told to every listener in order, with its row of the log
 * (its `seq` included). A listener that throws (a stream whose client left, a driver) loses its
 * event; the others, and the commit, go on.
 *
 * Invariant: a listener hears every event stored after it started listening, except those
 * recorded (not yet stored) while nobody listened: a listener that must miss nothing waits for
 * `durable()` after `on()`, and reads the log for what came before.
 */
import type { EngineEvent } from '../core/engine/events.ts'
import type { EventRow } from '../store/store.ts'

/** Hears each stored event, with its row in the log. */
export type StoredListener = (e: EngineEvent, row: EventRow) => void

interface Recorded {
  event: EngineEvent
  row: EventRow
}

export class StoredEvents {
  private listeners: StoredListener[] = []
  /** Recorded since the last batch was taken. */
  private unstored: Recorded[] = []
  /** In the batch being committed. */
  private delivering: Recorded[] = []
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
  on(listener: StoredListener): () => void {
    this.listeners.push(listener)
    return () => {
      this.listeners = this.listeners.filter((l) => l !== listener)
    }
  }

  /** An event the engine emitted, to be told once stored (kept only while anyone listens). */
  recorded(event: EngineEvent, row: EventRow): void {
    if (this.listeners.length > 0) this.unstored.push({ event, row })
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
    for (const { event, row } of events) {
      for (const listener of this.listeners) {
        try {
          listener(event, row)
        } catch (error) {
          this.onListenerError(error, event)
        }
      }
    }
  }
}
