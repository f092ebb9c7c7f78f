/**
 * Pages of the order list, filtered and sorted, with the count of every order the filters match:
 * the SQL both backends run for {@link Store.findOrders}.
 *
 * Invariants: pages are keyset pages (each starts after the key of the last order of the page
 * before), so paging through the list meets every order once even while new ones arrive; the
 * order of a page is total (the id breaks every tie), and every filter but the text search is a
 * range of one of migration 8's indexes, read backwards and stopped at the limit.
 */
import { toBin } from './rows.ts'
import type { OrderQuery, OrderSort } from './store.ts'

/** A filter as SQL with `?` placeholders and their values. */
interface Where {
  sql: string
  params: unknown[]
}

/**
 * The id range a text names when it reads as the start of an id: up to 32 hex digits, dashes
 * ignored. Undefined for any other text.
 */
export function idPrefixRange(text: string): [Buffer, Buffer] | undefined {
  const hex = text.replace(/-/g, '').toLowerCase()
  if (hex.length === 0 || hex.length > 32 || !/^[0-9a-f]+$/.test(hex)) return undefined
  return [Buffer.from(hex.padEnd(32, '0'), 'hex'), Buffer.from(hex.padEnd(32, 'f'), 'hex')]
}

/** The text as a LIKE pattern matching it anywhere, its own `%`, `_` and `\` taken literally. */
function containing(text: string): string {
  return `%${text.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`
}

/** The filters of a query, without where its page starts: what its count counts. */
function filters(q: OrderQuery): Where {
  const parts: string[] = []
  const params: unknown[] = []
  if (q.owner !== undefined) {
    parts.push('owner = ?')
    params.push(q.owner)
  }
  if (q.states !== undefined && q.states.length > 0) {
    parts.push(`state IN (${q.states.map(() => '?').join(', ')})`)
    params.push(...q.states)
  }
  if (q.text !== undefined && q.text !== '') {
    const range = idPrefixRange(q.text)
    const name = "lower(source_name) LIKE ? ESCAPE '\\'"
    parts.push(range === undefined ? name : `(${name} OR id BETWEEN ? AND ?)`)
    params.push(containing(q.text), ...(range ?? []))
  }
  return { sql: parts.join(' AND '), params }
}

/** The columns a page is ordered by, descending, as in its indexes. */
export function sortKey(sort: OrderSort | undefined): string {
  return sort === 'priority' ? 'priority DESC, id DESC' : 'id DESC'
}

/** The orders of one page: the query's `listed` statement, for `countedOrders` to count jobs of. */
export function pageSql(q: OrderQuery, columns: string): Where {
  const where = filters(q)
  const parts = where.sql === '' ? [] : [where.sql]
  const params = [...where.params]
  if (q.after !== undefined) {
    // A row value: both backends read it as one range of the (…, priority, id) index.
    if (q.sort === 'priority') {
      parts.push('(priority, id) < (?, ?)')
      params.push(q.after.priority, toBin(q.after.id))
    } else {
      parts.push('id < ?')
      params.push(toBin(q.after.id))
    }
  }
  const sql = `SELECT ${columns} FROM orders${parts.length === 0 ? '' : ` WHERE ${parts.join(' AND ')}`}
    ORDER BY ${sortKey(q.sort)} LIMIT ?`
  return { sql, params: [...params, q.limit] }
}

/** How many orders the query's filters match, whatever page it reads. */
export function countSql(q: OrderQuery): Where {
  const where = filters(q)
  return {
    sql: `SELECT count(*) AS n FROM orders${where.sql === '' ? '' : ` WHERE ${where.sql}`}`,
    params: where.params,
  }
}
