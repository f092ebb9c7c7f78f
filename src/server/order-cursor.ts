/**
 * The cursor of `GET /v1/orders`: where the next page starts, opaque to callers. It holds the
 * sort it was made for and the key of the last order of its page; a cursor of another sort, or
 * text that is no cursor, is refused as bad input naming `query.cursor`.
 */
import { ValidationError } from '../core/errors.ts'
import { isId } from '../core/ids.ts'
import type { OrderKey, OrderSort } from '../store/store.ts'

/** The cursor of the page after the one ending at `key`. */
export function encodeCursor(sort: OrderSort, key: OrderKey): string {
  return Buffer.from(JSON.stringify([sort, key.priority, key.id])).toString('base64url')
}

/** The key a cursor starts after; VALIDATION_FAILED for one not made for `sort`. */
export function decodeCursor(cursor: string, sort: OrderSort): OrderKey {
  let parsed: unknown
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'))
  } catch {
    parsed = undefined
  }
  if (Array.isArray(parsed) && parsed.length === 3) {
    const [made, priority, id] = parsed as unknown[]
    if (made === sort && Number.isInteger(priority) && typeof id === 'string' && isId(id)) {
      return { priority: priority as number, id }
    }
  }
  throw new ValidationError([
    {
      path: 'query.cursor',
      message: `not a cursor of this list sorted by ${sort}: pass Lockstep-Next-Cursor as it was given, with the same sort`,
    },
  ])
}
